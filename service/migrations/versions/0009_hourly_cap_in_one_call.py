"""The hourly cap's lock and count on PostgreSQL in one call.

Before an automatic email is queued, notifications.outbox counts those sent to the same
address in the last hour, under a transaction-level lock per address so that two
transactions cannot both count under the cap; that was two statements, two round trips.
`pcse_automatic_replies_since(address, since)` takes the same lock, then counts. It must be
a VOLATILE function: under READ COMMITTED each of its statements takes a fresh snapshot,
so the count sees what a transaction that held the lock before it committed (one
statement doing both would count from a snapshot taken before it waited for the lock).
What it counts is what notifications.outbox counts on SQLite; tests/test_outbox.py holds
both to the same cases.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOMATIC_REPLIES_SINCE = r"""
CREATE OR REPLACE FUNCTION pcse_automatic_replies_since(for_address text, since timestamptz)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('outbox:' || for_address));
    SELECT count(*) INTO found FROM outbox
    WHERE to_address = for_address
      AND created_at > since
      AND auto_submitted <> 'no'
      AND status NOT IN ('held', 'dismissed');
    RETURN found;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUTOMATIC_REPLIES_SINCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS pcse_automatic_replies_since(text, timestamptz)")
