"""Approve on the case page: the preview of its changes, a stale plan refused with the new
one shown, the second caseworker for open findings; and changing a case's kind."""

from __future__ import annotations

import re

from markupsafe import escape

from caseworker.models import Caseworker
from core.catalogue import Service
from tests.fixtures.browser import (
    PRACTICE,
    SUPERVISOR,
    WebClient,
    _password_hash,
    seed_directory,
    triage_case,
)
from tests.test_web_case import approve_via_preview
from workflow import directory
from workflow.cases import get_case
from workflow.models import CaseEvent

SECOND = "cara.second@nhs.net"


def _case(web: WebClient, **kwargs) -> str:
    seed_directory(web.settings.database)
    with web.settings.database.transaction() as session:
        session.add(
            Caseworker(
                email=SECOND, name="Cara Second", password_hash=_password_hash(), active=True
            )
        )
    return triage_case(web.settings.database, web.settings.raw_dir, **kwargs)


def _preview(web: WebClient, ref: str, reason: str = "Phoned the partner"):
    return web.post_form(
        f"/cases/{ref}/approve/preview", {"reason": reason}, from_page=f"/cases/{ref}"
    )


def _digest(page: str) -> str:
    found = re.search(r'name="plan" value="([0-9a-f]{64})"', page)
    assert found
    return found.group(1)


def _admins(web: WebClient) -> list[str]:
    with web.settings.database.transaction() as session:
        return [p.email for p in directory.admins(session, PRACTICE, Service.GPP)]


def test_the_preview_lists_the_changes_and_the_open_findings(web: WebClient) -> None:
    ref = _case(web)
    web.sign_in()
    page = _preview(web, ref).text
    assert "GPP Practice User Administrator to Nia Patel (nia.patel@nhs.net)" in page
    assert "The signature date is in the future." in page
    assert "A second caseworker or a supervisor must confirm these changes" in page
    assert _admins(web) == ["gill.admin@nhs.net"]  # a preview changes nothing
    empty = _preview(web, ref, reason="")
    assert empty.status_code == 400 and "Enter why the case is approved" in empty.text


def test_a_stale_plan_is_refused_and_the_new_one_shown(web: WebClient) -> None:
    ref = _case(web)
    web.sign_in(SUPERVISOR)
    shown = _digest(_preview(web, ref).text)
    with web.settings.database.transaction() as session:  # corrected in between
        case = get_case(session, ref)
        case.fields = {
            **case.fields,
            "nominees": [{"name": "Ola Other", "email": "ola@nhs.net", "services": ["gpp"]}],
        }
    stale = web.post_form(
        f"/cases/{ref}/actions/approve",
        {"reason": "ok", "plan": shown},
        from_page=f"/cases/{ref}",
    )
    assert stale.status_code == 409
    assert "no longer the ones that were confirmed" in stale.text
    assert "Ola Other (ola@nhs.net)" in stale.text and _digest(stale.text) != shown
    assert _admins(web) == ["gill.admin@nhs.net"]
    done = web.post_form(
        f"/cases/{ref}/actions/approve",
        {"reason": "ok", "plan": _digest(stale.text)},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert "Approve: done. The case is now completed." in done.text
    assert "ola@nhs.net" in _admins(web)


def test_a_second_caseworker_confirms_open_findings(web: WebClient) -> None:
    ref = _case(web)
    web.sign_in()
    first = approve_via_preview(web, ref, "Phoned the partner")
    assert "a second caseworker or a supervisor must confirm" in first.text
    assert 'id="proposal"' in first.text and "You approved this case" in first.text
    again = _preview(web, ref).text
    assert "You approved these changes already" in again
    own = web.post_form(
        f"/cases/{ref}/actions/approve",
        {"reason": "me again", "plan": _digest(again)},
        from_page=f"/cases/{ref}",
    )
    assert own.status_code == 409 and "a second caseworker" in own.text
    web.sign_in(SECOND)
    page = _preview(web, ref).text
    assert "casey.worker@nhs.net approved these same changes" in page
    done = approve_via_preview(web, ref, "Agreed")
    assert "The case is now completed." in done.text
    assert "nia.patel@nhs.net" in _admins(web)


def test_change_the_kind_from_the_case_page(web: WebClient) -> None:
    ref = _case(
        web,
        subject="PL admin please",
        text="Please set up Nia Patel (nia.patel@nhs.net) as PL Organisation Administrator "
        "for A81001.\n\nMo",
    )
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    assert 'action="/cases/' + ref + '/kind"' in page
    empty = web.post_form(
        f"/cases/{ref}/kind", {"kind": "", "reason": ""}, from_page=f"/cases/{ref}"
    )
    assert empty.status_code == 400
    assert "Choose the kind of request this is" in empty.text
    assert "Enter why the kind is changed" in empty.text
    same = web.post_form(
        f"/cases/{ref}/kind",
        {"kind": "user_admin_form", "reason": "x"},
        from_page=f"/cases/{ref}",
    )
    assert same.status_code == 409 and "already of the kind" in same.text
    done = web.post_form(
        f"/cases/{ref}/kind",
        {"kind": "pl_admin", "reason": "It asks for a PL admin"},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert escape("The case is now a PL Organisation Administrator request") in done.text
    with web.settings.database.transaction() as session:
        case = get_case(session, ref)
        assert case.kind == "pl_admin" and case.state == "triage"
        assert case.fields["nominees"][0]["services"] == ["pl"]
        event = session.query(CaseEvent).filter_by(case_id=case.id, event="kind_changed").one()
        assert event.actor == "casey.worker@nhs.net"
        assert "It asks for a PL admin" in event.detail
        assert "The email was read again" in event.detail
