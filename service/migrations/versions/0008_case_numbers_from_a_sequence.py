"""Case numbers on PostgreSQL from a sequence per year, taken in the case's transaction.

`pcse_next_case_number(year)` returns the year's next number, or NULL where the year has
no sequence yet (or the transaction asking has not seen it made). workflow.cases.insert_numbered
then calls `pcse_first_case_number(year)` in a short transaction of its own, which makes
the sequence if need be (`pcse_make_case_numbers`) and returns its next number: no batch
holds a new sequence uncommitted while other workers wait for it. A sequence gives each
number once without holding a lock to the end of the transaction, so workers never queue
for it; a transaction that rolls back leaves a gap.

A year's sequence starts after the highest number the year already has: in ref_counters
(which SQLite still uses, and earlier versions used here) or in a case's reference. It
lives in ref_counters' schema, whatever the search path, and `pg_dump` keeps it with its
value. Those who would make one at once take turns on a lock on ref_counters, which also
makes each see what the one before committed; a lock held elsewhere is waited for five
seconds at most (the caller's batch may hold locks the waiting ones want). Every `pcse db
upgrade` makes this year's and next year's sequences (service.schema), so that a schema or
a privilege that does not allow it shows there, not at the first request of a year.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The schema-qualified name of a year's sequence, beside ref_counters.
SEQUENCE_NAME = r"""
CREATE OR REPLACE FUNCTION pcse_case_numbers_name(for_year integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('%I.%I', n.nspname, 'pcse_case_numbers_' || for_year)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = 'ref_counters'::regclass
$$;
"""

NEXT_CASE_NUMBER = r"""
CREATE OR REPLACE FUNCTION pcse_next_case_number(for_year integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    sequence_name text := pcse_case_numbers_name(for_year);
BEGIN
    IF to_regclass(sequence_name) IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN nextval(sequence_name);
END
$$;
"""

MAKE_CASE_NUMBERS = r"""
CREATE OR REPLACE FUNCTION pcse_make_case_numbers(for_year integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    sequence_name text := pcse_case_numbers_name(for_year);
    ref_prefix text := 'PCSE-' || for_year || '-';
    highest integer;
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    LOCK TABLE ref_counters IN SHARE ROW EXCLUSIVE MODE;
    IF to_regclass(sequence_name) IS NOT NULL THEN
        RETURN sequence_name;
    END IF;
    SELECT greatest(
        coalesce((SELECT last FROM ref_counters WHERE year = for_year), 0),
        coalesce((
            SELECT max(substr(ref, length(ref_prefix) + 1)::integer) FROM cases
            WHERE starts_with(ref, ref_prefix)
              AND substr(ref, length(ref_prefix) + 1) ~ '^[0-9]{1,9}$'
        ), 0)
    ) INTO highest;
    EXECUTE format('CREATE SEQUENCE %s AS integer', sequence_name);
    IF highest > 0 THEN
        PERFORM setval(sequence_name, highest);
    END IF;
    RETURN sequence_name;
END
$$;
"""

FIRST_CASE_NUMBER = r"""
CREATE OR REPLACE FUNCTION pcse_first_case_number(for_year integer) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    RETURN nextval(pcse_make_case_numbers(for_year));
END
$$;
"""

# Before 0007's code counts again in ref_counters, each year's last number goes back there,
# and the sequences go (kept, an upgrade again would go on from their old values, below the
# numbers counted meanwhile).
BACK_TO_COUNTERS = r"""
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT s.schemaname, s.sequencename, s.last_value FROM pg_sequences s
        JOIN pg_class c ON c.oid = 'ref_counters'::regclass
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
        WHERE s.sequencename ~ '^pcse_case_numbers_[0-9]+$'
    LOOP
        IF found.last_value IS NOT NULL THEN
            INSERT INTO ref_counters (year, last)
            VALUES (substr(found.sequencename, 19)::integer, found.last_value)
            ON CONFLICT (year) DO UPDATE SET last = greatest(ref_counters.last, excluded.last);
        END IF;
        EXECUTE format('DROP SEQUENCE %I.%I', found.schemaname, found.sequencename);
    END LOOP;
END
$$;
"""

FUNCTIONS = (
    "pcse_first_case_number(integer)",
    "pcse_make_case_numbers(integer)",
    "pcse_next_case_number(integer)",
    "pcse_case_numbers_name(integer)",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for definition in (SEQUENCE_NAME, NEXT_CASE_NUMBER, MAKE_CASE_NUMBERS, FIRST_CASE_NUMBER):
            op.execute(definition)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(BACK_TO_COUNTERS)
        for function in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
