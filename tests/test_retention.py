"""Retention: time travels through the periods with the workflow's clock; raw files go,
each case's skeleton stays and says what was removed and when; subject access and
erasure for one person."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import JSON, LargeBinary, String, Text, cast, func, select, update

from caseworker.models import Caseworker
from core.clock import FixedClock
from core.db import Base, Database
from core.timeutil import utcnow
from intake.models import InboundMessage, RawBlob
from intake.rawstore import RawStore
from notifications.hourly_cap import cap_key
from notifications.models import OutboxMessage
from service.models import JobRun
from tests.fixtures.browser import (
    WebClient,
    email_bytes,
    seed_directory,
    store_message,
    triage_case,
)
from workflow import actions, directory
from workflow.cases import get_case, move
from workflow.models import Case, CaseEvent, Person, RoleChange
from workflow.privacy import ErasureRefused, erase_person, export_person
from workflow.retention import REMOVED, purge
from workflow.settings import RetentionConfig

PCSE = Path(sys.executable).parent / "pcse"
ROOT = Path(__file__).parent.parent
REQUESTER = "practice.manager@nhs.net"
NOMINEE = "nia.patel@nhs.net"
SIGNER = "priya.shah@nhs.net"
PERIODS = RetentionConfig(
    raw_after_days=90,
    personal_after_days=730,
    unlinked_after_days=90,
    failed_after_days=365,
    batch_size=1,  # several batches, one case each
)


def close_case(db: Database, ref: str, clock: FixedClock, state: str = "withdrawn") -> None:
    with db.transaction() as session:
        move(
            session,
            get_case(session, ref),
            state,
            actor="caseworker@pcse.nhs.uk",
            reason="Withdrawn by the practice.",
            now=clock.now(),
        )


def sent_on(db: Database, ref: str, clock: FixedClock, status: str = "sent") -> int:
    """An email sent on the case, or one still waiting (its text names the nominee)."""
    with db.transaction() as session:
        row = OutboxMessage(
            case_id=get_case(session, ref).id,
            purpose="outcome_withdrawn",
            message_id=f"<{ref}@pcse.test>",
            to_address=REQUESTER,
            cap_key=REQUESTER,  # as notifications.outbox.enqueue writes it
            to_name="Practice Manager",
            subject=f"[{ref}] Your request",
            body_text="Nia Patel was not added.",
            status=status,
            created_at=clock.now(),
            sent_at=clock.now() if status == "sent" else None,
        )
        session.add(row)
        session.flush()
        return row.id


def raw_files(raw_dir: Path) -> set[str]:
    return {p.name for p in raw_dir.rglob("*") if p.is_file()}


def history_of(db: Database, ref: str) -> list[CaseEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(CaseEvent)
                .where(CaseEvent.case_id == get_case(session, ref).id)
                .order_by(CaseEvent.id)
            )
        )


def test_time_travel_through_the_periods(web: WebClient) -> None:
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    clock = FixedClock(utcnow())
    seed_directory(db)
    closed = triage_case(db, raw_dir, now=clock.now())
    still_open = triage_case(
        db, raw_dir, subject="Another request", text="Add Sam.", now=clock.now()
    )
    close_case(db, closed, clock)
    sent_on(db, closed, clock)
    ignored = store_message(
        db,
        raw_dir,
        email_bytes(subject="Out of office", text="Away.", sender="away@nhs.net"),
        status="ignored",
    )
    store_message(
        db,
        raw_dir,
        email_bytes(subject="Broken", text="x", sender="broken@nhs.net"),
        status="failed",
        error="could not read",
    )
    files_at_start = raw_files(raw_dir)
    assert len(files_at_start) == 4

    def run(**kwargs):
        return purge(db, PERIODS, raw_dir=raw_dir, now=clock.now(), **kwargs)

    assert run().counts() == dict.fromkeys(run().counts(), 0)
    clock.advance(days=89)
    assert sum(run().counts().values()) == 0

    clock.advance(days=2)  # 91 days after it closed
    preview = run(dry_run=True)
    assert (preview.cases_raw, preview.unlinked_messages, preview.failed_messages) == (1, 1, 0)
    assert raw_files(raw_dir) == files_at_start  # a dry run changes nothing
    report = run()
    assert (report.cases_raw, report.raw_messages, report.sent_bodies) == (1, 2, 1)
    assert report.unlinked_messages == 1
    left = raw_files(raw_dir)
    assert len(left) == 2  # the open case's email and the failed one
    with db.transaction() as session:
        case = get_case(session, closed)
        source = session.get(InboundMessage, case.source_message_id)
        assert not RawStore(raw_dir).exists(source.sha256)
        assert case.requester == REQUESTER and case.fields  # personal values still here
        (sent,) = session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == case.id))
        assert sent.body_text == "" and sent.purged_at is not None
        other = session.get(InboundMessage, ignored)
        assert other.from_address is None and other.subject is None
        assert RawStore(raw_dir).exists(
            session.get(InboundMessage, get_case(session, still_open).source_message_id).sha256
        )
    (event,) = [e for e in history_of(db, closed) if e.event == "retention"]
    assert event.data == {"stage": "raw", "raw_messages": 1, "sent_bodies": 1, "days": 90}
    assert "90 days after the case closed" in event.detail
    assert sum(run().counts().values()) == 0  # once only

    # The case page says the original is gone and why, and shows what is left.
    web.sign_in()
    page = web.get(f"/cases/{closed}").text
    assert "removed under the retention policy" in page
    assert "The original email was removed on" in page

    clock.advance(days=366 - 91)
    assert run().failed_messages == 1
    assert len(raw_files(raw_dir)) == 1

    clock.advance(days=731 - 366)
    report = run()
    assert report.cases_personal == 1
    with db.transaction() as session:
        case = get_case(session, closed)
        assert (case.requester, case.requester_name, case.subject) == (REMOVED, None, None)
        assert case.fields == {} and case.findings == [] and case.reason is None
        # The skeleton: reference, kind, organisation, dates, states, who acted.
        assert (case.kind, case.state, case.organisation_code) == (
            "user_admin_form",
            "withdrawn",
            "A81001",
        )
        opened = get_case(session, still_open)
        assert opened.requester == REQUESTER and opened.fields  # open cases are kept
    events = history_of(db, closed)
    moves = [(e.from_state, e.to_state, e.actor) for e in events if e.to_state]
    assert moves[-1] == ("triage", "withdrawn", "caseworker@pcse.nhs.uk")
    text = json.dumps([[e.detail, e.data] for e in events if e.event != "retention"])
    assert "nia" not in text.lower() and "practice" not in text.lower()
    assert [e.data.get("stage") for e in events if e.event == "retention"] == ["raw", "personal"]
    # Nothing of the requester or nominee is left in the case's rows.
    with db.transaction() as session:
        case = get_case(session, closed)
        rows = [
            session.get(InboundMessage, case.source_message_id),
            *list(session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == case.id))),
        ]
        dumped = json.dumps(
            [{c.name: str(getattr(r, c.key, "")) for c in r.__table__.columns} for r in rows]
        )
        assert REQUESTER not in dumped and "Nia Patel" not in dumped
    page = web.get(f"/cases/{closed}").text
    assert "Requester, names, addresses" in page and closed in page
    queue = web.get("/?state=withdrawn").text
    row = queue.split(f">{closed}<")[1].split("</tr>")[0]
    assert REMOVED in row and "practice.manager" not in row


def test_purge_and_case_show_through_the_command(
    web: WebClient, db_url: str, tmp_path: Path
) -> None:
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    seed_directory(db)
    long_ago = FixedClock(utcnow())
    long_ago.advance(days=-800)
    ref = triage_case(db, raw_dir, now=long_ago.now())
    close_case(db, ref, long_ago)
    config = tmp_path / "pcse.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n\n[storage]\nraw_dir = "{raw_dir}"\n\n'
        "[retention]\nraw_after_days = 30\npersonal_after_days = 365\n",
        encoding="utf-8",
    )

    def pcse(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PCSE), "--config", str(config), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    dry = pcse("purge", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["cases_personal"] == 1 and json.loads(dry.stdout)["dry_run"]
    done = pcse("purge", "--json")
    assert (
        json.loads(done.stdout)["cases_raw"] == 1 and json.loads(done.stdout)["raw_messages"] == 1
    )
    assert raw_files(raw_dir) == set()
    shown = json.loads(pcse("case", "show", ref, "--json").stdout)
    assert shown["requester"] == REMOVED and shown["state"] == "withdrawn"
    assert shown["retention"]["raw_removed_at"] and shown["retention"]["personal_removed_at"]
    text = pcse("case", "show", ref).stdout
    assert "retention: original emails removed" in text
    listed = json.loads(pcse("queue", "--json").stdout)
    assert [(c["ref"], c["requester"]) for c in listed] == [(ref, REMOVED)]
    bad = config.read_text().replace("personal_after_days = 365", "personal_after_days = 10")
    config.write_text(bad)
    refused = pcse("purge")
    assert refused.returncode != 0 and "personal_after_days" in refused.stderr
    assert "Traceback" not in refused.stderr


# --------------------------------------------------------------------------- the person


def story(db: Database, raw_dir: Path) -> tuple[str, str]:
    """Two cases naming the nominee (one approved, so she holds a role), one that does not."""
    seed_directory(db)
    named = triage_case(db, raw_dir)
    other = triage_case(db, raw_dir, requester="someone.else@nhs.net", text="Add Sam Cole.")
    with db.transaction() as session:
        case = get_case(session, other)
        case.fields = {
            **case.fields,
            "nominees": [{"name": "Sam Cole", "email": "sam.cole@nhs.net", "services": ["gpp"]}],
        }
    with db.transaction() as session:
        # The triage case has open findings: a supervisor approves it alone.
        session.add(
            Caseworker(
                email="caseworker@pcse.nhs.uk",
                name="Case Worker",
                password_hash="x",
                is_supervisor=True,
            )
        )
    with db.transaction() as session:
        actions.approve(session, _env(), named, by="caseworker@pcse.nhs.uk", reason="Checked.")
    sent_on(db, named, FixedClock(utcnow()))
    return named, other


def _env():
    from tests.test_workflow_helpers import make_env

    return make_env(FixedClock(utcnow()))


def test_subject_access_export_names_the_person_and_nobody_else(web: WebClient) -> None:
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    named, other = story(db, raw_dir)
    with db.transaction() as session:
        document = export_person(session, NOMINEE)
    assert [c["ref"] for c in document["cases"]] == [named]
    (case,) = document["cases"]
    assert case["named_as"] == ["nominee"]
    assert case["entries"] == [{"name": "Nia Patel", "email": NOMINEE, "services": ["gpp"]}]
    assert [r["role"] for r in document["roles"]] == ["GPP Practice User Administrator"]
    assert any(
        m["direction"] == "out" and m["purpose"] == "welcome_admin" for m in document["messages"]
    )
    text = json.dumps(document).lower()
    for someone_else in (
        REQUESTER,
        SIGNER,
        "someone.else",
        "sam.cole",
        "priya shah",
        "practice manager",
        "caseworker@pcse.nhs.uk",
        other.lower(),
    ):
        assert someone_else not in text, someone_else

    with db.transaction() as session:
        requester = export_person(session, REQUESTER, raw_dir=raw_dir)
    assert [c["named_as"] for c in requester["cases"]] == [["requester"]]
    (wrote,) = [m for m in requester["messages"] if m["direction"] == "in"]
    assert wrote["text"].strip() == "Please make [another person] a GPP admin."
    assert "nia.patel" not in json.dumps(requester).lower()
    assert "Nia Patel" not in json.dumps(requester)  # the email sent to the manager, masked


def every_text_value(db: Database) -> list[tuple[str, str, str]]:
    """(table, column, text) for every text, JSON and binary value in every table."""
    import service.schema  # noqa: F401 (every table on the metadata)

    found = []
    with db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, LargeBinary):
                    values = [bytes(v).decode("latin-1") for v in session.scalars(select(column))]
                elif isinstance(column.type, String | JSON):
                    values = list(session.scalars(select(cast(column, Text))))
                else:
                    continue
                found += [(table.name, column.name, v) for v in values if v]
    return found


def test_erasure_leaves_no_trace_of_the_address_and_keeps_the_skeleton(
    web: WebClient,
) -> None:
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    named, other = story(db, raw_dir)
    with pytest.raises(ErasureRefused, match="still holds roles"), db.transaction() as session:
        erase_person(
            session, NOMINEE, by="dpo@pcse.nhs.uk", reason="SAR-1", raw_dir=raw_dir, now=utcnow()
        )
    with db.transaction() as session:
        directory.deactivate_person(
            session, email=NOMINEE, actor="dpo@pcse.nhs.uk", reason="Asked to be erased"
        )
    assert any(NOMINEE in v.lower() for _, _, v in every_text_value(db))
    with db.transaction() as session:
        other_source = get_case(session, other).source_message_id
        other_sha = session.get(InboundMessage, other_source).sha256
        named_sha = session.get(InboundMessage, get_case(session, named).source_message_id).sha256
    with db.transaction() as session:
        report = erase_person(
            session,
            NOMINEE.upper(),
            by="dpo@pcse.nhs.uk",
            reason=f"Erasure request from {NOMINEE}",
            raw_dir=raw_dir,
            now=utcnow(),
        )
    assert report.cases == [named]
    leftovers = [(t, c) for t, c, v in every_text_value(db) if NOMINEE in v.lower()]
    assert leftovers == []
    names_left = [(t, c) for t, c, v in every_text_value(db) if "nia patel" in v.lower()]
    assert names_left == []
    # The original emails of the case that named her are gone; the other case's stays.
    assert not RawStore(raw_dir).exists(named_sha)
    assert RawStore(raw_dir).exists(other_sha)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(RawBlob)) == 0
        # The skeleton: the case, its moves, the role granted and ended, under the marker.
        case = get_case(session, named)
        assert case.state == "completed" and case.requester == REQUESTER
        feed = session.scalars(select(RoleChange).order_by(RoleChange.id)).all()
        assert [(r.action, r.person_email) for r in feed][-2:] == [
            ("grant", report.marker),
            ("revoke", report.marker),
        ]
        erased = [
            e
            for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))
            if e.event == "erasure"
        ]
        assert erased and report.marker in erased[0].detail
        assert get_case(session, other).fields["nominees"][0]["email"] == "sam.cole@nhs.net"


def test_erasure_takes_the_hourly_cap_s_key_of_a_tagged_address(web: WebClient) -> None:
    """ "nia.patel+pcse@nhs.net" is counted as the mailbox "nia.patel@nhs.net": that key
    names her too, though a search for the address erased does not find it."""
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    seed_directory(db)
    ref = triage_case(db, raw_dir)
    tagged = "Nia.Patel+pcse@nhs.net"
    with db.transaction() as session:
        row = OutboxMessage(
            case_id=get_case(session, ref).id,
            purpose="outcome_withdrawn",
            message_id=f"<{ref}-tagged@pcse.test>",
            to_address=tagged,
            cap_key=cap_key(tagged),
            subject=f"[{ref}] Your request",
            body_text="Your request was withdrawn.",
            status="sent",
        )
        session.add(row)
        session.flush()
        row_id = row.id
    with db.transaction() as session:
        erase_person(
            session, tagged, by="dpo@pcse.nhs.uk", reason="SAR-2", raw_dir=raw_dir, now=utcnow()
        )
    with db.transaction() as session:
        erased = session.get_one(OutboxMessage, row_id)
        assert "nia" not in erased.to_address.lower() and erased.cap_key is None


def test_erasure_finds_a_name_beyond_ascii_and_one_in_the_reason(web: WebClient) -> None:
    """JSON is stored with characters beyond ASCII escaped ("Siobh\\u00e1n"), where a search
    for the name as written does not find it; the operator's reason may name her too."""
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    story(db, raw_dir)
    irish = "Siobhán O’Neill"
    with db.transaction() as session:
        for case in session.scalars(select(Case)):
            case.fields = json.loads(json.dumps(case.fields).replace("Nia Patel", irish))
            if NOMINEE in json.dumps(case.fields):  # also in capitals, and decomposed
                decomposed = unicodedata.normalize("NFD", irish)
                said = f"Signed by {irish.upper()}; nominee {decomposed}"
                case.findings = [*case.findings, {"code": "note", "message": said}]
        session.execute(update(Person).where(Person.email == NOMINEE).values(name=irish))
        directory.deactivate_person(
            session, email=NOMINEE, actor="dpo@pcse.nhs.uk", reason="Asked to be erased"
        )
    stored = [v for _, _, v in every_text_value(db) if "siobh" in v.lower()]
    assert any("SIOBH" in v for v in stored) and any("a\\u0301n" in v for v in stored)
    assert any("\\u00e1" in v for v in stored)  # the premise: escaped where it is JSON
    with db.transaction() as session:
        erase_person(
            session,
            NOMINEE,
            by="dpo@pcse.nhs.uk",
            reason=f"Erasure asked for by {irish}",
            raw_dir=raw_dir,
            now=utcnow(),
        )
    left = [(t, c) for t, c, v in every_text_value(db) if "siobh" in v.lower()]
    assert left == []


def test_an_email_still_held_on_a_closed_case_is_not_kept_whole(web: WebClient) -> None:
    """Held by the hourly cap when the case closed, and never released: the purge dismisses
    it, so that it is cleared with the rest and can no longer be sent."""
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    seed_directory(db)
    ref = triage_case(db, raw_dir)
    clock = FixedClock(utcnow())
    held_id = sent_on(db, ref, clock, status="held")
    close_case(db, ref, clock)
    later = clock.now() + timedelta(days=PERIODS.personal_after_days + 5)
    assert purge(db, PERIODS, raw_dir=raw_dir, now=later).cases_personal == 1
    with db.transaction() as session:
        held = session.get_one(OutboxMessage, held_id)
        assert held.status == "dismissed"
        assert REQUESTER not in (held.to_address or "") + (held.cap_key or "")
        assert "Nia Patel" not in (held.body_text or "") + (held.to_name or "")


def test_the_daily_job_purges_once_a_day_across_workers(web: WebClient, db_url: str) -> None:
    from service.config import from_mapping
    from service.jobs_data import purge_job

    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    seed_directory(db)
    clock = FixedClock(utcnow())
    first = triage_case(db, raw_dir, now=clock.now())
    close_case(db, first, clock)
    config = from_mapping(
        {"database": {"url": db_url}, "storage": {"raw_dir": str(raw_dir)}}, source="test"
    )
    # Two workers of the service, each with the job.
    workers = [purge_job(db, config, clock)[2], purge_job(db, config, clock)[2]]
    clock.advance(days=91)
    for run in workers:
        run()
    with db.transaction() as session:
        assert get_case(session, first).raw_purged_at is not None
        assert session.scalar(select(func.count()).select_from(JobRun)) == 1
    # A case that becomes due later the same day waits for the next day's run.
    second = triage_case(db, raw_dir, subject="A later request", now=clock.now())
    close_case(db, second, FixedClock(clock.now() - timedelta(days=95)))
    workers[0]()
    with db.transaction() as session:
        assert get_case(session, second).raw_purged_at is None
    clock.advance(days=1)
    workers[1]()
    with db.transaction() as session:
        assert get_case(session, second).raw_purged_at is not None


def test_erasing_an_address_nothing_names_is_refused(
    sqlite_database: Database, tmp_path: Path
) -> None:
    with pytest.raises(ErasureRefused, match="Nothing names"), sqlite_database.transaction() as s:
        erase_person(s, "nobody@nhs.net", by="dpo", reason="SAR-2", raw_dir=tmp_path, now=utcnow())
    with sqlite_database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CaseEvent)) == 0


VICTIM = "jane_doe@nhs.net"


def sha_of(db: Database, inbound_id: int) -> str:
    with db.transaction() as session:
        return session.get_one(InboundMessage, inbound_id).sha256


def erase(db: Database, raw_dir: Path, address: str = VICTIM):
    with db.transaction() as session:
        return erase_person(
            session, address, by="dpo@pcse.nhs.uk", reason="SAR-9", raw_dir=raw_dir, now=utcnow()
        )


def test_erasure_removes_an_email_on_no_case_that_names_the_person(web: WebClient) -> None:
    """Someone else wrote about her; the email was ignored and is on no case: what the
    ledger keeps of it (its subject) is rewritten, and its original goes too."""
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    about_her = store_message(
        db,
        raw_dir,
        email_bytes(subject=f"Please remove {VICTIM}", text="She left.", sender=REQUESTER),
        status="ignored",
    )
    unrelated = store_message(
        db, raw_dir, email_bytes(subject="Opening hours", text="-", sender=REQUESTER), uid=2
    )
    named_sha, other_sha = sha_of(db, about_her), sha_of(db, unrelated)
    report = erase(db, raw_dir)
    assert report.raw_messages == 1
    assert not RawStore(raw_dir).exists(named_sha) and RawStore(raw_dir).exists(other_sha)
    with db.transaction() as session:
        row = session.get_one(InboundMessage, about_her)
        assert VICTIM not in (row.subject or "") and row.purged_at is not None


def test_erasure_removes_the_emails_of_a_case_that_names_the_person_only_in_its_text(
    web: WebClient,
) -> None:
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    seed_directory(db)
    ref = triage_case(
        db, raw_dir, subject=f"Question about {VICTIM}", text=f"Is {VICTIM} still here?"
    )
    with db.transaction() as session:
        source = get_case(session, ref).source_message_id
    assert source is not None
    sha = sha_of(db, source)
    report = erase(db, raw_dir)
    assert report.cases == [ref] and report.raw_messages == 1
    assert not RawStore(raw_dir).exists(sha)


def test_erasing_an_address_with_an_underscore_leaves_a_look_alike_alone(
    web: WebClient,
) -> None:
    """LIKE reads _ as any character: jane_doe must not find janexdoe's case."""
    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    seed_directory(db)
    hers = triage_case(db, raw_dir, subject="Request one", text="Add her.")
    theirs = triage_case(db, raw_dir, subject="Request two", text="Add them.")
    with db.transaction() as session:
        for ref, address in ((hers, VICTIM), (theirs, "janexdoe@nhs.net")):
            case = get_case(session, ref)
            case.fields = {
                **case.fields,
                "nominees": [{"name": "Someone", "email": address, "services": ["gpp"]}],
            }
        their_sha = sha_of(db, get_case(session, theirs).source_message_id or -1)
    with db.transaction() as session:
        exported = [c["ref"] for c in export_person(session, VICTIM)["cases"]]
    report = erase(db, raw_dir)
    assert exported == [hers] and report.cases == [hers]
    assert RawStore(raw_dir).exists(their_sha)


def test_the_purge_keeps_only_the_codes_of_the_mail_servers_answer(web: WebClient) -> None:
    """A refusal's words name the recipient; the service's own reasons name nobody."""
    from notifications.claims import UNANSWERED

    db, raw_dir = web.settings.database, Path(web.settings.raw_dir)
    seed_directory(db)
    clock = FixedClock(utcnow())
    ref = triage_case(db, raw_dir, now=clock.now())
    refused = sent_on(db, ref, clock, status="failed")
    with db.transaction() as session:  # sent_on gives every email of a case one Message-ID
        session.get_one(OutboxMessage, refused).message_id = f"<refused-{ref}@pcse.test>"
    unanswered = sent_on(db, ref, clock)
    answer = f"550 5.1.1 <{REQUESTER}>: Recipient address rejected (Practice Manager)"
    with db.transaction() as session:
        session.get_one(OutboxMessage, refused).last_error = answer
        session.get_one(OutboxMessage, unanswered).last_error = UNANSWERED
    close_case(db, ref, clock)
    later = clock.now() + timedelta(days=PERIODS.personal_after_days + 5)
    assert purge(db, PERIODS, raw_dir=raw_dir, now=later).cases_personal == 1
    with db.transaction() as session:
        assert session.get_one(OutboxMessage, refused).last_error == f"550 5.1.1 {REMOVED}"
        assert session.get_one(OutboxMessage, unanswered).last_error == UNANSWERED
