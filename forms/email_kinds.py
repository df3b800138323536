"""What an email asks for: a PL or OPH admin, a main contact, performer registration,
pharmacy market entry, or something else, told from the words people use."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.states import CaseKind

# Ways people name each request. Role names follow core.catalogue; these patterns
# recognise how people write them ("PL admin", "Opto User Management", …).
PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    CaseKind.MAIN_CONTACT: (re.compile(r"\bmain\s+contact", re.I),),
    CaseKind.PL_ADMIN: (
        re.compile(r"\bPL\s+(?:organi[sz]ation\s+|org\s+|user\s+)?admin", re.I),
        re.compile(r"performers?\s+lists?\s+(?:organi[sz]ation\s+|org\s+)?admin", re.I),
    ),
    CaseKind.OPH_ADMIN: (
        re.compile(r"user\s+management\s*+\(?\s*+organi[sz]ation", re.I),
        re.compile(r"\bopto(?:metry)?\s+user\s+management", re.I),
        re.compile(r"ophthalmic\b[^.\n]{0,40}\b(?:admin|user\s+management)", re.I),
        re.compile(r"\bOPH\b[^.\n]{0,20}\badmin", re.I),
    ),
    CaseKind.MARKET_ENTRY: (
        re.compile(r"market\s+entry|pharmacy\s+market|market\s+administration|marketentry", re.I),
    ),
    CaseKind.PERFORMER_REGISTRATION: (
        re.compile(
            r"\b(?:join|joining|register|registering|registration|apply|applying|"
            r"application|get\s+on(?:to)?|be\s+added|added\s+to|included)\b"
            r"[^.?!\n]{0,60}\bperformers?\s+list",
            re.I,
        ),
        re.compile(
            r"\bperformers?\s+list\b[^.?!\n]{0,40}\b(?:registration|application|"
            r"join|joining|register)",
            re.I,
        ),
        re.compile(r"\bNPL\s*\d?\b"),
        re.compile(r"\bregister(?:ing)?\s+as\s+an?\s+(?:gp|performer|optometrist|dentist)", re.I),
        re.compile(r"\bperformer\s+registration", re.I),
    ),
}
# A GPP user admin is set up from the signed certification form, not from an email.
GPP_ADMIN = re.compile(
    r"\bGPPP?\s+(?:practice\s+)?(?:user\s+)?admin|GP\s+payments\s+(?:and|&)\s+pensions\b"
    r"[^.\n]{0,60}\badmin",
    re.I,
)
# Ties go to the admin requests before the questions answered with directions.
PRIORITY = (
    CaseKind.MAIN_CONTACT,
    CaseKind.PL_ADMIN,
    CaseKind.OPH_ADMIN,
    CaseKind.MARKET_ENTRY,
    CaseKind.PERFORMER_REGISTRATION,
)
ADMIN_KINDS = (CaseKind.MAIN_CONTACT, CaseKind.PL_ADMIN, CaseKind.OPH_ADMIN)


@dataclass(frozen=True)
class KindReading:
    kind: str  # a CaseKind value
    requested: list[str]  # every admin request found, most likely first
    gpp: bool  # a GPP user admin was asked for


def _score(kind: str, subject: str, own: str) -> int:
    score = 0
    for pattern in PATTERNS[kind]:
        score += 3 * bool(pattern.search(subject)) + 2 * bool(pattern.search(own))
    return score


def classify(subject: str, own: str, quoted: str) -> KindReading:
    """The request's kind from the subject and the writer's own words; quoted earlier mail
    is consulted only when those say nothing (a reply that just supplies a detail)."""
    scores = {kind: _score(kind, subject, own) for kind in PRIORITY}
    if not any(scores.values()):
        scores = {kind: _score(kind, "", quoted) for kind in PRIORITY}
    ranked = sorted(PRIORITY, key=lambda k: (-scores[k], PRIORITY.index(k)))
    requested = [k for k in ranked if k in ADMIN_KINDS and scores[k] > 0]
    gpp = bool(GPP_ADMIN.search(subject) or GPP_ADMIN.search(own))
    best = ranked[0]
    if scores[best] == 0:
        return KindReading(CaseKind.OTHER, [], gpp)
    return KindReading(best, [str(k) for k in requested], gpp)


def as_kind(reading: KindReading, kind: str) -> KindReading:
    """The reading with its kind set by a person (a case re-routed by a caseworker): the
    kind asked for first, any other admin requests found kept after it."""
    others = [k for k in reading.requested if k != kind]
    requested = [kind, *others] if kind in ADMIN_KINDS else others
    return KindReading(kind, requested, reading.gpp)
