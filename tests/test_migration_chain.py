"""Deployed databases upgrade through the Alembic chain with their data intact.

A database is built at each earlier revision (0001, 0002, … every revision but the
head), filled with rows as that release wrote them, upgraded to the head, and read back
through today's models. The rows are written with the columns of 0001, the frozen
first revision, so they stay valid at every later revision and the test keeps working
as migrations are added.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from bench.pgcluster import scratch_database
from caseworker.models import Caseworker
from core.db import Database, make_engine
from service.revisions import head_revision
from service.schema import MIGRATIONS, alembic_config, upgrade
from tests.fixtures.databases import PG_ADMIN_URL, _pg_available
from workflow.models import ApprovalRequest, Case, CaseEvent, Organisation

# 0001 is frozen: a deployed database was made by exactly this file.
INITIAL = MIGRATIONS / "versions" / "0001_initial_schema.py"
INITIAL_SHA256 = "7cdf6f7e79910a2d8ac4ab96d3ebf52ee31fd9e844c5d7810ff896d1a2f7a8b2"

WHEN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def earlier_revisions() -> list[str]:
    """Every revision but the head, oldest first."""
    revisions = [r.revision for r in script().walk_revisions()]
    return list(reversed(revisions))[:-1]


def test_the_initial_migration_is_frozen() -> None:
    assert hashlib.sha256(INITIAL.read_bytes()).hexdigest() == INITIAL_SHA256, (
        "0001_initial_schema.py changed: released revisions are never rewritten; "
        "add a new revision with `make migration` instead."
    )


def test_the_revisions_form_one_chain_numbered_in_order() -> None:
    directory = script()
    assert len(directory.get_heads()) == 1
    chain = list(reversed(list(directory.walk_revisions())))
    assert chain[0].down_revision is None
    for previous, current in itertools.pairwise(chain):
        assert current.down_revision == previous.revision
    numbers = [int(r.revision) for r in chain]
    assert numbers == list(range(1, len(chain) + 1))
    files = sorted(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))
    assert files == [r.revision for r in chain]
    assert head_revision() == directory.get_current_head()  # what commands ask for


ROWS: list[tuple[str, dict]] = [
    (
        "organisations",
        {
            "id": 1,
            "code": "A81001",
            "name": "The Riverside Surgery",
            "type": "gp_practice",
            "icb_code": "QHM",
            "status": "active",
            "updated_at": WHEN,
        },
    ),
    (
        "people",
        {
            "id": 1,
            "email": "alex.smith@nhs.net",
            "name": "Alex Smith",
            "active": True,
            "created_at": WHEN,
        },
    ),
    (
        "role_assignments",
        {
            "id": 1,
            "person_id": 1,
            "organisation_id": 1,
            "service": "gpp",
            "role": "GPP Practice User Administrator",
            "granted_by": "import",
            "granted_at": WHEN,
            "grant_reason": "existing holder",
        },
    ),
    (
        "inbound_messages",
        {
            "id": 1,
            "mailbox": "enquiries",
            "uidvalidity": 7,
            "uid": 42,
            "message_id": "<m1@nhs.net>",
            "sha256": "a" * 64,
            "size": 1234,
            "received_at": WHEN,
            "status": "processed",
            "attempts": 1,
        },
    ),
    (
        "cases",
        {
            "id": 1,
            "ref": "PCSE-2026-000001",
            "kind": "gpp_admin_form",
            "state": "awaiting_approval",
            "organisation_code": "A81001",
            "requester": "pat.jones@nhs.net",
            "requester_name": "Pat Jones",
            "fields": {"organisation_code": "A81001"},
            "findings": [],
            "source_message_id": 1,
            "created_at": WHEN,
            "updated_at": WHEN,
        },
    ),
    (
        "case_events",
        {
            "id": 1,
            "case_id": 1,
            "at": WHEN,
            "actor": "system",
            "event": "state",
            "from_state": "received",
            "to_state": "awaiting_approval",
            "detail": "Asked the approver.",
            "data": {},
        },
    ),
    (
        "approval_requests",
        {
            "id": 1,
            "case_id": 1,
            "token": "t" * 40,
            "approver_email": "sam.patel@nhs.net",
            "approver_name": "Dr Sam Patel",
            "approver_source": "signer",
            "capacity": "gp_partner",
            "created_at": WHEN,
            "expires_at": WHEN,
            "status": "open",
        },
    ),
    (
        "caseworkers",
        {
            "id": 1,
            "email": "casey@nhs.net",
            "name": "Casey Worker",
            "password_hash": "argon2-hash",
            "is_supervisor": False,
            "active": True,
            "failed_logins": 0,
            "created_at": WHEN,
        },
    ),
]


def fill_as_released(engine: sa.Engine) -> None:
    """Rows as the first release wrote them, with that release's columns only."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.begin() as conn:
        for table, row in ROWS:
            conn.execute(metadata.tables[table].insert().values(**row))
        if engine.dialect.name == "postgresql":
            # Later inserts take the next id, as they would after real use.
            for table, _ in ROWS:
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'released.sqlite3'}"
        return
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with scratch_database(PG_ADMIN_URL, prefix=f"pcse_chain_{os.getpid()}_") as url:
        yield url


@pytest.mark.parametrize("revision", earlier_revisions())
def test_a_database_with_data_upgrades_from_an_earlier_revision(
    empty_url: str, revision: str
) -> None:
    engine = make_engine(empty_url)
    try:
        cfg = alembic_config(empty_url)
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        fill_as_released(engine)
        upgrade(engine)  # what `pcse db upgrade` does
        with engine.connect() as conn:
            head = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        assert head == script().get_current_head()
    finally:
        engine.dispose()
    read_back(Database(empty_url))


def read_back(db: Database) -> None:
    try:
        with db.transaction() as session:
            case = session.scalars(sa.select(Case)).one()
            assert (case.ref, case.state, case.requester_name) == (
                "PCSE-2026-000001",
                "awaiting_approval",
                "Pat Jones",
            )
            assert case.fields == {"organisation_code": "A81001"}
            assert session.scalars(sa.select(CaseEvent.detail)).all() == ["Asked the approver."]
            approval = session.scalars(sa.select(ApprovalRequest)).one()
            assert (approval.approver_name, approval.status) == ("Dr Sam Patel", "open")
            org = session.scalars(sa.select(Organisation)).one()
            assert org.name == "The Riverside Surgery"
            casey = session.scalars(sa.select(Caseworker)).one()
            assert casey.email == "casey@nhs.net"
            assert casey.must_change_password is False
            # The upgraded database takes new rows beside the old ones.
            session.add(Organisation(code="B82002", name="Hill Practice", type="gp_practice"))
        with db.transaction() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(Organisation)) == 2
    finally:
        db.dispose()
