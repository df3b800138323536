"""What approving a case will change, shown before it is applied, and bound to a digest.

The plan is found by the code that applies it (workflow.apply.dry_run, inside a savepoint
that is rolled back), so what a caseworker confirms is what will be applied. The plan's
digest covers the case (state, kind, organisation, findings) and each effect on the
directory; a confirmation carries the digest it was shown, and if anything in it changed
in between, the confirmation is refused and the new plan is shown.

A case that still has open findings, or values a caseworker corrected, needs a supervisor,
or a second caseworker (a different account) confirming the same plan that the first one
proposed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from core.catalogue import Service
from workflow import approvals
from workflow.apply import dry_run
from workflow.correct_values import label_for
from workflow.decisions import planned_changes
from workflow.env import WorkflowEnv
from workflow.models import Case

# readings[path]["source"] of a value a caseworker set (workflow.corrections.SOURCE).
CASEWORKER_SOURCE = "caseworker"

# The history event a first caseworker's approval of a case with open findings writes.
PROPOSED = "approval_proposed"


@dataclass(frozen=True)
class Plan:
    ref: str
    state: str
    kind: str
    organisation_code: str | None
    grants: list[dict[str, str]]  # role, email, name
    removals: list[dict[str, str]]  # role, email, name: a Main Contact replaced (R2)
    warnings: list[str]
    conflict: str | None  # the rule applying would break now, if any
    findings: list[str]  # open findings: a second person must confirm
    cancels: list[str] = field(default_factory=list)  # approvers whose open requests end
    digest: str = field(default="")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "state": self.state,
            "kind": self.kind,
            "organisation": self.organisation_code,
            "grants": self.grants,
            "removals": self.removals,
            "warnings": self.warnings,
            "conflict": self.conflict,
            "findings": self.findings,
            "needs_second_person": bool(self.findings),
            "cancels": self.cancels,
            "plan": self.digest,
        }

    def lines(self) -> list[str]:
        """The plan in sentences, for the command line."""
        org = self.organisation_code or "(no organisation)"
        out = [f"Grant {g['role']} at {org} to {g['name']} <{g['email']}>." for g in self.grants]
        out += [f"End {r['role']} at {org} of {r['name']} <{r['email']}>." for r in self.removals]
        out += [f"Cancel the open approval request to {a}." for a in self.cancels]
        out += [f"Warning: {w}" for w in self.warnings]
        if self.conflict:
            out.append(f"Refused: {self.conflict}")
        out += [f"Open finding: {f}" for f in self.findings]
        return out


def _digest(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def open_findings(case: Case) -> list[str]:
    """What a second person must look at before the case is approved: its open findings,
    and every value of its reading that a caseworker set (workflow.corrections). A value
    a caseworker wrote is one person's word on what the request says; settled by their own
    correction, a doubt about it would otherwise need nobody else."""
    found = [str(f.get("message") or f.get("code") or f) for f in case.findings or []]
    return found + _corrected_values(case)


def _corrected_values(case: Case) -> list[str]:
    readings = (case.fields or {}).get("readings") or {}
    return [
        f"{label_for(path)} is a caseworker's correction (by {reading.get('corrected_by')}), "
        "not what the request said: a second person checks it."
        for path, reading in readings.items()
        if isinstance(reading, dict)
        and reading.get("source") == CASEWORKER_SOURCE
        and reading.get("corrected_at")  # the value corrected, not the boxes of its list
    ]


def plan_for(session: Session, env: WorkflowEnv, case: Case, *, actor: str) -> Plan:
    """What approving the case now would change; writes nothing."""
    effects, conflict = dry_run(session, env, case, actor=actor)
    grants = [
        {"role": c.role, "email": c.email, "name": c.name}
        for c in planned_changes(case.kind, case.fields or {})
    ]
    removals = [
        {"role": e.change.role, "email": e.replaced[0], "name": e.replaced[1]}
        for e in effects
        if e.change.service is Service.MAIN_CONTACT
        and e.replaced is not None
        and e.replaced[0] != e.change.email
    ]
    warnings = [w for e in effects for w in e.warnings]
    plan = Plan(
        ref=case.ref,
        state=case.state,
        kind=case.kind,
        organisation_code=case.organisation_code,
        grants=grants,
        removals=removals,
        warnings=warnings,
        conflict=conflict,
        findings=open_findings(case),
        cancels=[a.approver_email for a in approvals.open_requests(session, case)],
    )
    content = plan.as_dict()
    content.pop("plan")
    return Plan(**{**plan.__dict__, "digest": _digest(content)})


def open_proposal(case: Case) -> dict[str, Any] | None:
    """The approval a first caseworker proposed since the case last moved, if any: the
    data of its history row (`by`, `reason`, `plan`)."""
    for event in sorted(case.events, key=lambda e: e.id or 0, reverse=True):
        if event.to_state is not None:
            return None
        if event.event == PROPOSED:
            return dict(event.data or {})
    return None


def same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()
