"""A case's original message, read again from the raw store, and re-routing a case with it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from caseworker.mailview import TooSlowToRead, opening_bytes, read_mail
from intake.mailparse import ParsedMail
from workflow import rekind
from workflow.actions import ActionRefused
from workflow.cases import get_case
from workflow.env import WorkflowEnv
from workflow.models import Case


def source_mail(session: Session, raw_dir: Path, case: Case, seconds: float) -> ParsedMail | None:
    """The message that opened the case, parsed by intake's safe reader; None when the case
    was not opened from an email or its bytes are gone. Reading it may take `seconds` of
    CPU: past that, the change is refused (ActionRefused), since the case would otherwise
    be re-routed without being read again."""
    raw = opening_bytes(session, raw_dir, case)
    if raw is None:
        return None
    try:
        return read_mail(raw, seconds)
    except TooSlowToRead:
        raise ActionRefused(
            f"Reading the case's original email took more than the {seconds:g} s of CPU "
            "allowed ([limits] message_seconds), so it cannot be read again as another "
            "kind; nothing was changed."
        ) from None


def change_kind(
    session: Session,
    env: WorkflowEnv,
    raw_dir: Path,
    ref: str,
    *,
    kind: str,
    by: str,
    reason: str,
    seconds: float,
) -> Case:
    """workflow.rekind.change_kind with the case's original message read from the store
    (within `seconds` of CPU)."""
    case = get_case(session, ref)
    mail = source_mail(session, raw_dir, case, seconds)
    return rekind.change_kind(session, env, ref, kind=kind, by=by, reason=reason, mail=mail)
