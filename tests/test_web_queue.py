"""The queue: counts by state, what needs a person first, filters, search and paging."""

from __future__ import annotations

import re
from datetime import timedelta

from markupsafe import escape

from notifications.models import OutboxMessage
from tests.fixtures.browser import WebClient, email_bytes, store_message
from workflow.cases import create_case, get_case, move


def _case(
    web: WebClient,
    *,
    state: str | None = "triage",
    kind: str = "pl_admin",
    org: str | None = "A81001",
    requester: str = "someone@nhs.net",
    age_days: float = 0,
    reason: str = "Needs a look.",
) -> str:
    with web.settings.database.transaction() as session:
        at = web.settings.env.clock.now() - timedelta(days=age_days)
        case = create_case(session, kind=kind, requester=requester, organisation_code=org, now=at)
        if state:
            move(session, case, state, actor="system", reason=reason, now=at)
        return case.ref


def _refs(html: str) -> list[str]:
    return re.findall(r'href="/cases/(PCSE-\d{4}-\d{6})"', html)


def test_counts_by_state_and_needs_a_person_first_oldest_first(web: WebClient) -> None:
    newer = _case(web, age_days=1)
    older = _case(web, age_days=3, reason="Unclear <b>reply</b>")
    _case(web, state="needs_info", age_days=5)
    failed = store_message(
        web.settings.database,
        web.settings.raw_dir,
        email_bytes(subject="Broken", text="x"),
        status="failed",
        error="ValueError: the handler failed",
    )
    with web.settings.database.transaction() as session:
        session.add(
            OutboxMessage(
                purpose="outcome_rejected",
                message_id="<held@pcse>",
                to_address="loop@nhs.net",
                subject="[PCSE] held",
                body_text="x",
                status="held",
            )
        )
    web.sign_in()
    page = web.get("/").text
    assert _refs(page) == [older, newer]  # needs_info is not listed
    assert page.index(older) < page.index(f"/messages/{failed}") < page.index("/outbox/1")
    assert "ValueError: the handler failed" in page
    assert "Held: too many automatic replies" in page
    assert "3 days" in page and "1 day" in page
    assert escape("Unclear <b>reply</b>") in page
    found = re.findall(r'<span class="app-counts__number">(\d+)</span> ([A-Za-z ]+)<', page)
    counts = {label: int(n) for n, label in found}
    assert counts["Triage"] == 2 and counts["Needs information"] == 1
    assert counts["Failed messages"] == 1 and counts["Failed or held emails"] == 1


def test_filter_by_state_kind_and_organisation(web: WebClient) -> None:
    triage_pl = _case(web, kind="pl_admin", org="A81001")
    triage_oph = _case(web, kind="oph_admin", org="B82002")
    waiting = _case(web, state="needs_info", kind="pl_admin", org="A81001")
    web.sign_in()
    assert _refs(web.get("/?state=needs_info").text) == [waiting]
    assert _refs(web.get("/?state=all&kind=pl_admin").text) == [triage_pl, waiting]
    assert _refs(web.get("/?state=all&organisation=b82 002").text) == [triage_oph]
    assert _refs(web.get("/?state=triage&kind=oph_admin").text) == [triage_oph]
    assert "Nothing matches these filters." in web.get("/?state=rejected").text


def test_search_by_reference_email_or_ods_code(web: WebClient) -> None:
    first = _case(web, requester="jo.bloggs@nhs.net", org="A81001")
    second = _case(web, requester="sam.smith@nhs.net", org="C83003")
    web.sign_in()
    assert _refs(web.get(f"/?q={first.lower()}").text) == [first]
    assert _refs(web.get("/?q=SAM.SMITH").text) == [second]
    assert _refs(web.get("/?q=c83003").text) == [second]
    assert _refs(web.get("/?q=%25").text) == []  # LIKE wildcards are literal


def test_paging(web: WebClient) -> None:
    web.settings.page_size = 2
    refs = [_case(web, age_days=10 - n) for n in range(5)]
    web.sign_in()
    first = web.get("/").text
    assert _refs(first) == refs[:2]
    assert "page 1 of 3" in first
    assert 'href="/?page=2"' in first
    assert _refs(web.get("/?page=3").text) == refs[4:]
    assert _refs(web.get("/?page=99").text) == refs[4:]  # past the end: the last page
    assert _refs(web.get("/?page=zero").text) == refs[:2]


def test_the_queue_when_nothing_needs_a_person(web: WebClient) -> None:
    web.sign_in()
    assert "Nothing needs a person at the moment." in web.get("/").text


def test_take_a_case_then_filter_the_queue_by_who_has_it(web: WebClient) -> None:
    mine = _case(web, age_days=2)
    theirs = _case(web, age_days=1)
    nobodys = _case(web)
    with web.settings.database.transaction() as session:
        get_case(session, theirs).assigned_to = "sam.jones@pcse.nhs.uk"
    web.sign_in()
    page = web.get(f"/cases/{mine}").text
    assert "Assign to me" in page and "Release" not in page
    taken = web.post_form(
        f"/cases/{mine}/assign", {"to": "me"}, from_page=f"/cases/{mine}", follow=True
    )
    assert "The case is now with you." in taken.text and "Release" in taken.text
    assert _refs(web.get("/?assigned=me").text) == [mine]
    assert _refs(web.get("/?assigned=nobody").text) == [nobodys]
    queue = web.get("/").text
    assert "With sam.jones<wbr>@pcse.nhs.uk" in queue and "With you" in queue
    assert "Take it over" in web.get(f"/cases/{theirs}").text
    web.post_form(f"/cases/{mine}/assign", {"to": ""}, from_page=f"/cases/{mine}")
    assert _refs(web.get("/?assigned=me").text) == []
    assert sorted(_refs(web.get("/?assigned=nobody").text)) == sorted([mine, nobodys])
