"""The hourly cap counts per mailbox, not per address as written.

jane+1@example.org and jane+2@example.org reach one mailbox, and so do j.ane@gmail.com and
jane@googlemail.com; counting each address as written let twelve such variants get twelve
automatic replies in an hour where the cap allows five. `pcse_cap_key(address)` is
notifications.hourly_cap.cap_key in SQL (lower case, no "+tag", and for Gmail no dots and
gmail.com); `pcse_automatic_replies_since` and `pcse_automatic_replies_since_each` now take
keys, lock per key and count the rows whose address has that key. Only the hour's rows are
keyed: the new index on outbox.created_at finds them. The rows keep their addresses, so
nothing is backfilled. tests/test_hourly_cap.py holds both databases and cap_key to the
same keys.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAP_KEY = r"""
CREATE OR REPLACE FUNCTION pcse_cap_key(address text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN domain IN ('gmail.com', 'googlemail.com')
                THEN replace(local, '.', '') || '@gmail.com'
                ELSE local || '@' || domain END
    FROM (SELECT split_part(split_part(lower(address), '@', 1), '+', 1) AS local,
                 substr(lower(address), strpos(address, '@') + 1) AS domain) AS parts
$$;
"""

# 0009's and 0010's functions, with what they match on and lock: {match} is the row's
# address or its key, compared with the one given (`for_address` or each of `given`).
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


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_created_at"), ["created_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CAP_KEY)
        op.execute(SINCE.replace("{match}", "pcse_cap_key(to_address)"))
        op.execute(SINCE_EACH.replace("{match}", "pcse_cap_key(o.to_address)"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SINCE.replace("{match}", "to_address"))
        op.execute(SINCE_EACH.replace("{match}", "o.to_address"))
        op.execute("DROP FUNCTION IF EXISTS pcse_cap_key(text)")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_created_at"))
