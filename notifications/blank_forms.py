"""The blank forms attached to replies, found by the forms package."""

from __future__ import annotations

from pathlib import Path

import forms


class BlankFormMissing(LookupError):
    """A reply names a blank form that is not shipped."""


def blank_form_path(name: str) -> Path:
    """The shipped blank form `name` (e.g. "user-admin-request-form.pdf")."""
    try:
        path = Path(forms.blank_form_path(name))
    except LookupError as exc:
        raise BlankFormMissing(str(exc)) from exc
    if not path.is_file():
        raise BlankFormMissing(f"The blank form {name} is missing from {path.parent}.")
    return path
