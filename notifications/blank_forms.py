"""Where the blank forms attached to replies are found."""

from __future__ import annotations

from pathlib import Path

import forms


class BlankFormMissing(LookupError):
    """A reply names a blank form that is not shipped."""


def blank_form_path(name: str) -> Path:
    """The shipped blank form `name` (e.g. "user-admin-request-form.pdf")."""
    finder = getattr(forms, "blank_form_path", None)
    if finder is not None:
        try:
            path = Path(finder(name))
        except Exception as exc:  # the forms package says why; we only need "not found"
            raise BlankFormMissing(f"The blank form {name} is not shipped: {exc}") from exc
    else:
        path = Path(forms.__file__).parent / "blank" / Path(name).name
    if not path.is_file():
        raise BlankFormMissing(f"The blank form {name} is not shipped.")
    return path
