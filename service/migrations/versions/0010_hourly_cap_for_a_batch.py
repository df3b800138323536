"""The hourly cap's lock and count on PostgreSQL for all of a batch's senders in one call.

`pcse_automatic_replies_since_each(addresses, since)` takes the lock per address that
`pcse_automatic_replies_since` (migration 0009) takes, for each address given, in address
order (two batches taking theirs cannot each wait for the other), then counts, per address,
what that function counts: automatic emails written to it since `since`, not held or
dismissed. An address with none is left out. VOLATILE for the same reason: the count is
taken from a snapshot made after the locks were granted. notifications.hourly_cap calls it
for the senders of an intake batch, once.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOMATIC_REPLIES_SINCE_EACH = r"""
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
    SELECT o.to_address::text, count(*) FROM outbox AS o
    WHERE o.to_address = ANY (for_addresses)
      AND o.created_at > since
      AND o.auto_submitted <> 'no'
      AND o.status NOT IN ('held', 'dismissed')
    GROUP BY o.to_address;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUTOMATIC_REPLIES_SINCE_EACH)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS pcse_automatic_replies_since_each(text[], timestamptz)")
