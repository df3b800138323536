"""Every reply reaches a person, end to end: requests and replies go through Dovecot and the
real poller (`pcse poll --once`), our emails through an SMTP server (`pcse outbox send`),
and the requester answers the email that server received. A reply on a case closed in any
way marks it with a new reply and lists it under "Needs a person"; a caseworker marks the
reply read (the page) or reopens the case (`pcse case reopen`), each with a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from caseworker.app import create_app
from caseworker.queue import needs_person_rows
from core.db import Database
from core.timeutil import utcnow
from demo.mail import stamp
from intake.pipeline import run_round
from notifications.sender import send_pending
from notifications.sink import SmtpSink
from service.config import load, to_toml
from service.context import workflow_env
from tests.fixtures.browser import SUPERVISOR, WebClient, add_accounts, make_web_settings
from tests.fixtures.dovecot import DovecotServer, ImapAccount, plain_request
from workflow import actions
from workflow.cases import create_case, get_case, move
from workflow.env import WorkflowEnv
from workflow.handler import handle_message
from workflow.intake_link import WorkflowLink
from workflow.models import Case, CaseEvent

pytestmark = [pytest.mark.dovecot, pytest.mark.xdist_group("closed-replies")]

PCSE = str(Path(sys.executable).with_name("pcse"))
AUTHSERV = "mx.closed-replies.test"
OUR = "pcse.portalenquiries@nhs.net"
CLOSED = ["completed", "rejected", "answered", "expired", "withdrawn"]
# How each case is closed: moves through the state table, and the caseworker's actions
# where a person would take them (the rejection is emailed to the requester).
ROUTES = {
    "completed": ["triage", "approved", "completed"],
    "rejected": ["triage", "reject"],
    "answered": ["triage", "answered"],
    "expired": ["needs_info", "expired"],
    "withdrawn": ["triage", "withdraw"],
}


@dataclass
class World:
    root: Path
    config: Path
    account: ImapAccount
    sink: SmtpSink
    db: Database
    refs: dict[str, str]  # closed state -> case reference
    env: dict[str, str]

    def pcse(self, *args: str) -> str:
        done = subprocess.run(
            [PCSE, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            cwd=self.root,
        )
        assert done.returncode == 0, f"pcse {args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def deliver(self, *messages: bytes) -> None:
        """As the receiving mail server: stamp its verdict, file in the inbox; then one poll
        and one sending round, as `pcse poll --once` and `pcse outbox send` do them."""
        self.account.append([stamp(m, AUTHSERV) for m in messages])
        self.send()
        config = load(self.config)
        report = run_round(
            self.db, config, handle_message(workflow_env(config)), cases=WorkflowLink()
        )
        assert report.processing.failed == 0
        self.send()

    def send(self) -> None:
        send_pending(self.db, load(self.config))

    def queued(self) -> set[str]:
        """What needs a person, in process (the CLI's own answer is checked once a case)."""
        config = load(self.config)
        with self.db.transaction() as session:
            rows = needs_person_rows(session, now=utcnow(), targets=config.targets)
            return {row.reference for row in rows}

    def case(self, ref: str) -> Case:
        with self.db.transaction() as session:
            case = get_case(session, ref)
            _ = case.events
            return case

    def needs_person(self) -> dict[str, dict]:
        rows = json.loads(self.pcse("queue", "--needs-person", "--json"))
        return {row["ref"]: row for row in rows}

    def reply(self, state: str, text: str) -> bytes:
        """The requester answers the last email the SMTP server received about the case."""
        ref = self.refs[state]
        ours = [
            r.message() for r in self.sink.messages if f"[{ref}]" in str(r.message()["Subject"])
        ]
        assert ours, f"no email about {ref} reached the SMTP server"
        last = ours[-1]
        message = EmailMessage()
        message["From"] = f"Requester <{requester(state)}>"
        message["To"] = OUR
        message["Subject"] = f"Re: {last['Subject']}"
        message["Message-ID"] = make_msgid(domain="example.nhs.uk")
        message["In-Reply-To"] = last["Message-ID"]
        message["References"] = last["Message-ID"]
        message.set_content(text)
        return bytes(message)


def requester(state: str) -> str:
    return f"{state}.manager@example.nhs.uk"


def _close(session, env: WorkflowEnv, case: Case, state: str) -> None:
    for step in ROUTES[state]:
        if step == "reject":
            actions.reject(session, env, case.ref, by="casey@pcse", reason="Not our form.")
        elif step == "withdraw":
            actions.withdraw(session, env, case.ref, by="casey@pcse", reason="Sent twice.")
        elif case.state != step:
            move(session, case, step, actor="test", reason=f"to {step}")


def _config(root: Path, db: Database, account: ImapAccount, sink: SmtpSink) -> Path:
    box = account.mailbox_config()
    path = root / "pcse.toml"
    path.write_text(
        to_toml(
            {
                "database": {"url": db.url},
                "mailboxes": [
                    {
                        "name": "enquiries",
                        "address": OUR,
                        "imap_host": "127.0.0.1",
                        "imap_port": box.imap_port,
                        "imap_ssl": False,
                        "username": box.username,
                        "password": box.password,
                    }
                ],
                "smtp": {"host": sink.host, "port": sink.port, "from_address": OUR},
                "security": {
                    "sender_authentication": "authserv-id",
                    "trusted_authserv_ids": [AUTHSERV],
                },
                "storage": {"raw_dir": root / "raw"},
                "notifications": {"max_replies_per_hour": 50},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def world(
    dovecot_server: DovecotServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if dovecot_server.process is None:
        dovecot_server.start()
    root = tmp_path_factory.mktemp("closed-replies")
    account = dovecot_server.add_user()
    sink = SmtpSink().start()
    db = Database(f"sqlite:///{root / 'pcse.sqlite3'}")
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    config = _config(root, db, account, sink)
    world = World(root, config, account, sink, db, {}, env)
    try:
        world.pcse("db", "upgrade")
        add_accounts(db)
        world.deliver(
            *(
                plain_request(n, sender=requester(state), subject=f"Please help ({state})")
                for n, state in enumerate(CLOSED)
            )
        )
        workflow_env = make_web_settings(db, root / "raw").env
        with db.transaction() as session:
            for state in CLOSED:
                case = session.scalars(select(Case).where(Case.requester == requester(state))).one()
                _close(session, workflow_env, case, state)
                world.refs[state] = case.ref
        world.send()
        world.deliver(
            *(world.reply(s, "This is a mistake. Please reverse it urgently.") for s in CLOSED)
        )
        yield world
    finally:
        sink.stop()
        db.dispose()


@pytest.fixture
def web(world: World) -> Iterator[WebClient]:
    settings = make_web_settings(world.db, world.root / "raw")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield WebClient(client, settings)


@pytest.mark.parametrize("state", CLOSED)
def test_a_reply_to_a_closed_case_reaches_a_person(
    world: World, web: WebClient, state: str
) -> None:
    ref = world.refs[state]
    case = world.case(ref)
    # The case stays closed, marked; nothing was answered automatically.
    assert case.state == state
    assert case.new_reply_at is not None
    assert [e.event for e in case.events].count("new_reply") == 1
    listed = world.needs_person()
    assert ref in listed and listed[ref]["new_reply_at"] and listed[ref]["state"] == state
    web.sign_in()
    queue = web.get("/").text
    assert f'value="case:{ref}"' in queue and "New reply from" in queue
    page = web.get(f"/cases/{ref}").text
    assert "This is a mistake. Please reverse it urgently." in page
    assert "Reopen the case" in page and "Mark the reply as read" in page

    # Marking it read needs a reason; with one, the case leaves the queue, still closed.
    refused = web.post_form(
        f"/cases/{ref}/new-reply", {"do": "clear", "reason": ""}, from_page=f"/cases/{ref}"
    )
    assert refused.status_code == 400 and "Enter what you did about the reply" in refused.text
    assert world.case(ref).new_reply_at is not None
    web.post_form(
        f"/cases/{ref}/new-reply",
        {"do": "clear", "reason": "Phoned the practice: no change needed."},
        from_page=f"/cases/{ref}",
    )
    cleared = world.case(ref)
    assert cleared.new_reply_at is None and cleared.state == state
    assert ref not in world.queued()
    last = [e for e in cleared.events if e.event == "new_reply_cleared"][-1]
    assert last.actor == "casey.worker@nhs.net"
    assert last.data["reason"] == "Phoned the practice: no change needed."

    # The requester writes again: marked again, and this time the case is reopened.
    world.deliver(world.reply(state, "Still wrong, please call me."))
    assert world.case(ref).new_reply_at is not None and ref in world.queued()
    # Any caseworker reopens a closed case with a reply; an expired one, a supervisor only.
    by = SUPERVISOR if state == "expired" else "casey@pcse"
    world.pcse("case", "reopen", ref, "--by", by, "--reason", "Reversal requested.")
    reopened = world.case(ref)
    assert reopened.state == "triage" and reopened.new_reply_at is None
    assert listed_reason(world, ref).startswith(f"Reopened by {by} after a reply on the {state}")


def listed_reason(world: World, ref: str) -> str:
    row = world.needs_person()[ref]
    assert row["new_reply_at"] is None and row["state"] == "triage"
    return row["reason"]


def test_clearing_is_refused_without_a_marker_and_every_clearing_names_a_person(
    world: World,
) -> None:
    with world.db.transaction() as session:
        quiet = create_case(session, kind="other", requester="quiet@example.nhs.uk")
        ref = quiet.ref
    done = subprocess.run(
        [
            PCSE,
            "--config",
            str(world.config),
            "case",
            "clear-reply",
            ref,
            "--by",
            "casey",
            "--reason",
            "read",
        ],
        capture_output=True,
        text=True,
        env=world.env,
        cwd=world.root,
        timeout=60,
    )
    assert done.returncode != 0 and f"Case {ref} has no new reply." in done.stderr
    with world.db.transaction() as session:
        cleared = session.scalars(
            select(CaseEvent).where(CaseEvent.event == "new_reply_cleared")
        ).all()
        assert all(e.actor not in ("system", "") and e.data.get("reason") for e in cleared)
