"""The queue at volume: the CLI lists what the web's default view lists, new-reply markers,
target times and the overdue filter on the workflow clock, saved views, bulk actions, ages
from the last change, and the history folded under its steps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from core.clock import FixedClock
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from service.config import to_toml
from tests.fixtures.browser import (
    SUPERVISOR,
    WebClient,
    email_bytes,
    mark_new_reply,
    store_message,
)
from workflow import actions
from workflow.cases import create_case, get_case, move, record
from workflow.targets import CaseTimes, TargetsConfig, add_working_days, overdue

PCSE = str(Path(sys.executable).with_name("pcse"))
ITEM = re.compile(r'name="item" value="([^"]+)"')


def _case(web: WebClient, state: str | None = "triage", *, days: float = 0, who: str = "") -> str:
    clock = web.settings.env.clock
    at = clock.now() - timedelta(days=days)
    with web.settings.database.transaction() as session:
        case = create_case(session, kind="pl_admin", requester=who or "someone@nhs.net", now=at)
        path = {
            "triage": ["triage"],
            "needs_info": ["needs_info"],
            "completed": ["approved", "completed"],
            "rejected": ["rejected"],
        }.get(state or "", [])
        for step in path:
            move(session, case, step, actor="system", reason=f"to {step}", now=at)
        return case.ref


def _mark(web: WebClient, ref: str) -> None:
    mark_new_reply(web.settings.database, web.settings.raw_dir, web.settings.env, ref)


def _held_email(web: WebClient, to: str = "loop@nhs.net") -> int:
    with web.settings.database.transaction() as session:
        row = OutboxMessage(
            purpose="outcome_rejected",
            message_id=f"<held-{to}@pcse>",
            to_address=to,
            subject="[PCSE] held",
            body_text="x",
            status="held",
        )
        session.add(row)
        session.flush()
        return row.id


def _failed_message(web: WebClient, subject: str = "Broken") -> int:
    return store_message(
        web.settings.database,
        web.settings.raw_dir,
        email_bytes(subject=subject, text=subject),
        status="failed",
        error="ValueError: the handler failed",
    )


def _pcse(web: WebClient, tmp_path: Path, *args: str) -> list[dict]:
    config = tmp_path / "pcse.toml"
    config.write_text(to_toml({"database": {"url": web.settings.database.url}}))
    done = subprocess.run(
        [PCSE, "--config", str(config), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _web_items(web: WebClient, query: str = "") -> list[str]:
    """Every item the view lists, page after page."""
    items: list[str] = []
    page = 1
    while True:
        html = web.get(f"/?{query}&page={page}" if query else f"/?page={page}").text
        items += ITEM.findall(html)
        if f'href="/?{query + "&" if query else ""}page={page + 1}"' not in html:
            return items
        page += 1


def test_the_command_line_lists_what_the_web_queue_lists(web: WebClient, tmp_path: Path) -> None:
    web.settings.page_size = 2  # the web pages through what the CLI gives at once
    old_triage = _case(web, days=4)
    closed_with_reply = _case(web, "completed", days=3)
    _mark(web, closed_with_reply)
    waiting_with_reply = _case(web, "needs_info", days=2)
    _mark(web, waiting_with_reply)
    _case(web, "needs_info", days=1)  # waits for the requester: nobody's to do
    _case(web, "rejected", days=1)  # closed, nothing new
    new_triage = _case(web)
    failed = _failed_message(web)
    held = _held_email(web)
    web.sign_in()

    listed = _pcse(web, tmp_path, "queue", "--needs-person", "--json")

    expected = [
        f"case:{old_triage}",
        f"case:{closed_with_reply}",
        f"case:{waiting_with_reply}",
        f"case:{new_triage}",
        f"message:{failed}",
        f"outbox:{held}",
    ]
    assert [row["item"] for row in listed] == expected
    assert _web_items(web) == expected
    every_case = _pcse(web, tmp_path, "queue", "--json")
    assert len(every_case) == 6
    assert {frozenset(row) for row in listed + every_case} == {frozenset(every_case[0])}
    by_ref = {row["ref"]: row for row in listed}
    assert by_ref[closed_with_reply]["state"] == "completed"
    assert by_ref[closed_with_reply]["new_reply_at"]
    assert by_ref[closed_with_reply]["reason"].startswith("New reply from writer@nhs.net")
    assert by_ref[f"Message {failed}"]["kind"] == "failed_message"
    assert by_ref[f"Email {held}"]["kind"] == "held_email"


def test_new_reply_marker_view_and_age(web: WebClient) -> None:
    clock = web.settings.env.clock
    assert isinstance(clock, FixedClock)
    closed = _case(web, "completed", days=10)
    _mark(web, closed)
    open_case = _case(web, "triage", days=10)
    with web.settings.database.transaction() as session:
        # The case changed two hours ago: its age counts from then, not from arrival.
        move(
            session,
            get_case(session, open_case),
            "needs_info",
            actor="t",
            reason="asked",
            now=clock.now() - timedelta(hours=2),
        )
        move(
            session,
            get_case(session, open_case),
            "triage",
            actor="t",
            reason="answered",
            now=clock.now() - timedelta(hours=2),
        )
    web.sign_in()
    page = web.get("/").text
    assert "New reply" in page and "reply just now ago" not in page
    row = page[page.index(f'value="case:{closed}"') :].split("</tr>")[0]
    assert "Closed: no age" in row and "<time" not in row and "New reply from" in row
    row = page[page.index(f'value="case:{open_case}"') :].split("</tr>")[0]
    assert ">2 hours</time>" in row
    assert ITEM.findall(web.get("/?new_reply=1").text) == [f"case:{closed}"]
    views = web.get("/?new_reply=1").text
    assert '<a href="/?new_reply=1" aria-current="page">New replies</a>' in views
    assert 'href="/?overdue=1&amp;state=all"' in views
    case_page = web.get(f"/cases/{closed}").text
    assert "Please reverse this." in case_page and "Reopen the case" in case_page


def test_overdue_on_the_workflow_clock(web: WebClient) -> None:
    clock = web.settings.env.clock
    assert isinstance(clock, FixedClock)
    clock._now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
    fresh = _case(web)
    waiting = _case(web, "needs_info")
    closed = _case(web, "rejected", days=30)
    web.sign_in()
    assert ITEM.findall(web.get("/?overdue=1&state=all").text) == []

    clock.advance(hours=2)  # nobody took the triage case within the hour
    page = web.get("/?overdue=1&state=all").text
    assert ITEM.findall(page) == [f"case:{fresh}"] and "Overdue: not taken" in page
    web.post_form(f"/cases/{fresh}/assign", {"to": "me"}, from_page=f"/cases/{fresh}")
    assert ITEM.findall(web.get("/?overdue=1&state=all").text) == []

    clock.advance(days=4)  # Friday: four working days gone, one left
    web.sign_in()
    assert ITEM.findall(web.get("/?overdue=1&state=all").text) == []
    clock.advance(days=3)  # Monday: the weekend does not count, five working days have
    web.sign_in()  # a sign-in lasts hours, not days
    page = web.get("/?overdue=1&state=all").text
    assert ITEM.findall(page) == [f"case:{fresh}", f"case:{waiting}"]
    assert "Overdue: decision" in page and closed not in page


def test_target_times_count_working_days() -> None:
    friday = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    assert add_working_days(friday, 1, frozenset()) == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    saturday = datetime(2026, 3, 7, 11, 0, tzinfo=UTC)
    assert add_working_days(saturday, 1, frozenset()) == datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
    holiday = frozenset({date(2026, 3, 9)})
    assert add_working_days(friday, 1, holiday) == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    targets = TargetsConfig(acknowledge_within_hours=0.5, decide_within_working_days=1)
    case = CaseTimes("triage", friday, friday, None, None)
    assert overdue(case, targets, friday + timedelta(minutes=31)) == ["acknowledge"]
    assert overdue(case, targets, friday + timedelta(days=3, minutes=1)) == [
        "acknowledge",
        "decide",
    ]
    done = CaseTimes("completed", friday, friday, None, None)
    assert overdue(done, targets, friday + timedelta(days=30)) == []
    marked = CaseTimes("completed", friday, friday, friday, None)
    assert overdue(marked, targets, friday + timedelta(hours=1)) == ["acknowledge"]


def test_bulk_actions_on_a_selection(web: WebClient) -> None:
    first, second = _case(web, days=2), _case(web, days=1)
    failed = _failed_message(web)
    held = _held_email(web)
    other_held = _held_email(web, "other@nhs.net")
    web.sign_in()
    form = web.get("/").text.split('action="/queue/bulk"', 1)[1]
    assert re.search(r'name="csrf_token" value="[^"]+"', form.split("</form>")[0])
    back = "/?assigned=nobody"
    done = web.post_form(
        "/queue/bulk",
        {
            "action": "assign_me",
            "item": [f"case:{first}", f"case:{second}", f"message:{failed}"],
            "back": back,
        },
        follow=True,
    )
    assert str(done.url).endswith(back)
    assert f"Assign to me: done for Case {first}, Case {second}." in done.text
    assert f"Message {failed}: Assign to me applies only to cases." in done.text
    with web.settings.database.transaction() as session:
        assert {get_case(session, r).assigned_to for r in (first, second)} == {
            "casey.worker@nhs.net"
        }

    refused = web.post_form(
        "/queue/bulk", {"action": "dismiss", "item": [f"outbox:{held}"], "back": "/"}, follow=True
    )
    assert "Enter why the selected items are dismissed." in refused.text
    web.post_form(
        "/queue/bulk",
        {
            "action": "dismiss",
            "item": [f"outbox:{held}", f"message:{failed}"],
            "reason": "Loop to an auto-responder.",
            "back": "/",
        },
    )
    web.post_form("/queue/bulk", {"action": "retry", "item": [f"outbox:{other_held}"], "back": "/"})
    with web.settings.database.transaction() as session:
        assert session.get(OutboxMessage, held).status == "dismissed"
        assert session.get(OutboxMessage, other_held).status == "pending"
        assert session.get(InboundMessage, failed).status == "dismissed"
    assert ITEM.findall(web.get("/").text) == [f"case:{first}", f"case:{second}"]
    # Leaving the queue is refused: a bulk action only ever goes back to a view of it.
    away = web.post_form(
        "/queue/bulk",
        {"action": "release", "item": [f"case:{first}"], "back": "https://elsewhere.example/"},
    )
    assert away.headers["location"] == "/"


def test_a_bulk_action_leaves_a_case_someone_else_has_taken(web: WebClient) -> None:
    """The queue showed the case with nobody; a colleague took it since. Taking it over, or
    releasing it, is done from its page, which shows whose it is."""
    mine, theirs = _case(web, days=2), _case(web, days=1)
    web.sign_in()
    with web.settings.database.transaction() as session:
        actions.assign(session, web.settings.env, theirs, to=SUPERVISOR, by=SUPERVISOR)
    for action in ("assign_me", "release"):
        done = web.post_form(
            "/queue/bulk",
            {"action": action, "item": [f"case:{mine}", f"case:{theirs}"], "back": "/"},
            follow=True,
        )
        assert f"Case {theirs}: it is with {SUPERVISOR}; take it over" in done.text
        with web.settings.database.transaction() as session:
            assert get_case(session, theirs).assigned_to == SUPERVISOR
            assert get_case(session, mine).assigned_to == (
                "casey.worker@nhs.net" if action == "assign_me" else None
            )


def test_history_folds_automatic_checks_under_their_step(web: WebClient) -> None:
    ref = _case(web)
    with web.settings.database.transaction() as session:
        case = get_case(session, ref)
        for n in range(30):
            record(session, case, "check", f"Check {n} passed.")
        record(session, case, "assigned", "casey assigned the case.", actor="casey")
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    history = page[page.index('id="history"') :]
    assert "30 automatic entries" in history and "<details" in history
    assert history.index("Check 29 passed.") < history.index("casey assigned the case.")
    assert history.count('class="app-timeline__item"') == 3  # created, triage, assigned
