"""The blank forms shipped in forms/blank/, attached to replies that ask for a form."""

from __future__ import annotations

from pathlib import Path

from core.errors import PcseError

BLANK_DIR = Path(__file__).with_name("blank")


class UnknownBlankForm(PcseError, LookupError):
    pass


def blank_form_names() -> list[str]:
    return sorted(p.name for p in BLANK_DIR.glob("*.pdf"))


def blank_form_path(name: str) -> Path:
    """The path of a shipped blank form, by file name ("user-admin-request-form.pdf");
    the ".pdf" may be left off."""
    wanted = name if name.endswith(".pdf") else f"{name}.pdf"
    path = BLANK_DIR / Path(wanted).name
    if Path(wanted).name != wanted or not path.is_file():
        raise UnknownBlankForm(
            f"There is no blank form called {name!r}; the forms are: "
            f"{', '.join(blank_form_names())}."
        )
    return path
