"""What an installed copy holds: `pip install .` (README, "Production set-up") packs the
data files package-data names, and a file it misses is missing in production only."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_data_file_of_the_packages_is_installed() -> None:
    settings = _setuptools()
    patterns = settings["package-data"]["*"]
    packages = settings["packages"]["find"]["include"]
    roots = {p.split(".")[0].rstrip("*") for p in packages}
    left_out = [
        str(path.relative_to(ROOT))
        for root in sorted(roots)
        for path in (ROOT / root).rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and not any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    ]
    assert roots >= {"notifications", "caseworker", "forms", "service"}
    assert not left_out, left_out
