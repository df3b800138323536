"""What the case page's helpdesk part shows: the values a caseworker may correct, the
corrections made, the internal notes, and where a merged case went or what joined it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.states import FINAL_STATES, CaseState
from workflow.correct_values import correctable, label_for
from workflow.corrections import ALLOWED as CORRECTABLE_STATES
from workflow.merge_cases import MERGEABLE, MERGED_EVENT
from workflow.models import Case
from workflow.notes import NOTE_EVENT, REPLY_EVENT


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "not read"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def helpdesk_view(session: Session, case: Case) -> dict[str, Any]:
    state = CaseState(case.state)
    merged_into = session.get(Case, case.merged_into_id) if case.merged_into_id else None
    merged_from = session.scalars(
        select(Case.ref).where(Case.merged_into_id == case.id).order_by(Case.id)
    ).all()
    corrections = [
        {
            "at": e.at,
            "by": e.actor,
            "label": label_for(str(e.data.get("field"))),
            "old": _shown(e.data.get("old")),
            "new": _shown(e.data.get("new")),
            "reason": e.data.get("reason") or "",
        }
        for e in case.events
        if e.event == "correction"
    ]
    return {
        "can_correct": state in CORRECTABLE_STATES,
        "correct_options": [
            {"value": c.path, "text": f"{c.label} (now: {_shown(c.current)})"}
            for c in correctable(case.kind, case.fields or {})
        ],
        "corrections": corrections,
        "notes": [
            {"at": e.at, "by": e.actor, "text": e.detail}
            for e in case.events
            if e.event == NOTE_EVENT
        ],
        "replies": sum(1 for e in case.events if e.event == REPLY_EVENT),
        "can_reply": "@" in (case.requester or "") and not case.requester.endswith(".invalid"),
        "can_merge": state in MERGEABLE,
        "merged_into": merged_into.ref if merged_into else None,
        "merged_from": list(merged_from),
        "merge_events": sum(1 for e in case.events if e.event == MERGED_EVENT),
        "closed": state in FINAL_STATES,
    }
