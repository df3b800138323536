"""Write the next migration from the difference between the models and the head revision.

Usage: python scripts/new_migration.py "what changed"

Revisions form a chain (0001, 0002, ...): a deployed database is upgraded one revision at
a time, so no released revision is ever rewritten. Read the generated file before
committing it: autogenerate misses renames and server defaults.
"""

from __future__ import annotations

import re
import sys
import tempfile

from sqlalchemy import create_engine

from service.schema import MIGRATIONS, revision, upgrade

VERSIONS = MIGRATIONS / "versions"


def next_number() -> str:
    numbers = [int(p.name[:4]) for p in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")]
    return f"{max(numbers, default=0) + 1:04d}"


def main(message: str) -> None:
    before = set(VERSIONS.glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/head.sqlite3"
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        revision(url, message)
    (generated,) = set(VERSIONS.glob("*.py")) - before
    text = generated.read_text()
    rev = re.search(r"Revision ID: (\w+)", text).group(1)
    number = next_number()
    text = text.replace(rev, number)
    text = re.sub(r"Create Date: .*\n", "", text)
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40]
    target = VERSIONS / f"{number}_{slug}.py"
    generated.unlink()
    target.write_text(text)
    print("wrote", target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit('usage: python scripts/new_migration.py "what changed"')
    main(sys.argv[1])
