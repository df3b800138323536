"""The hourly cap counts by a stored key: outbox.cap_key, indexed with created_at.

0011 computed each row's mailbox key in the count itself, over every row of the hour, so a
count cost grew with the hour's mail: 20 ms on PostgreSQL and 13 ms on SQLite for a batch
with 6,000 rows in the hour, 44 ms at 20,000, the cost of a backlog drained after an
outage growing with the square of its size. Each row now keeps its key
(notifications.hourly_cap.cap_key, written by notifications.outbox.enqueue) and the count
reads it from the index. Rows of the day before the newest are keyed here; older rows are
past any hour the cap counts. `pcse_automatic_replies_since` and `pcse_automatic_replies_since_each`
now match the column.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence
from contextlib import suppress
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0011's functions, written out there; {match} is what a row's key is read from.
SINCE = r"""
CREATE OR REPLACE FUNCTION pcse_automatic_replies_since(for_address text, since timestamptz)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('outbox:' || for_address));
    SELECT count(*) INTO found FROM outbox
    WHERE {match} = for_address
      AND created_at > since
      AND auto_submitted <> 'no'
      AND status NOT IN ('held', 'dismissed');
    RETURN found;
END
$$;
"""
SINCE_EACH = r"""
CREATE OR REPLACE FUNCTION pcse_automatic_replies_since_each(
    for_addresses text[], since timestamptz
)
RETURNS TABLE (address text, found bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    one text;
BEGIN
    FOR one IN
        SELECT a FROM (SELECT DISTINCT unnest(for_addresses) AS a) AS given ORDER BY a COLLATE "C"
    LOOP
        PERFORM pg_advisory_xact_lock(hashtext('outbox:' || one));
    END LOOP;
    RETURN QUERY
    SELECT {match}::text, count(*) FROM outbox AS o
    WHERE {match} = ANY (for_addresses)
      AND o.created_at > since
      AND o.auto_submitted <> 'no'
      AND o.status NOT IN ('held', 'dismissed')
    GROUP BY 1;
END
$$;
"""


def _key(address: str) -> str:
    """notifications.hourly_cap.cap_key as it is at this revision (kept here: a migration
    must not change with the code after it)."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return address.strip().lower()
    local = local.split("+", 1)[0]
    if not domain.isascii():
        with suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    if domain in ("gmail.com", "googlemail.com"):
        return f"{local.replace('.', '')}@gmail.com"
    return f"{local}@{domain}"


def _key_the_last_day() -> None:
    outbox = sa.table(
        "outbox",
        sa.column("id", sa.Integer),
        sa.column("to_address", sa.String),
        sa.column("cap_key", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    newest = bind.execute(sa.select(sa.func.max(outbox.c.created_at))).scalar()
    if newest is None:
        return
    # A day before the newest row, not before now: a clock the service was given may differ.
    since = newest - timedelta(days=1)
    recent = sa.select(outbox.c.id, outbox.c.to_address).where(outbox.c.created_at > since)
    keys = [{"row": row.id, "key": _key(row.to_address)} for row in bind.execute(recent)]
    if keys:
        keyed = outbox.update().where(outbox.c.id == sa.bindparam("row"))
        bind.execute(keyed.values(cap_key=sa.bindparam("key")), keys)


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cap_key", sa.String(length=254), nullable=True))
        batch_op.create_index("ix_outbox_cap_key_created", ["cap_key", "created_at"], unique=False)
    _key_the_last_day()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SINCE.replace("{match}", "cap_key"))
        op.execute(SINCE_EACH.replace("{match}", "o.cap_key"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SINCE.replace("{match}", "pcse_cap_key(to_address)"))
        op.execute(SINCE_EACH.replace("{match}", "pcse_cap_key(o.to_address)"))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_cap_key_created")
        batch_op.drop_column("cap_key")
