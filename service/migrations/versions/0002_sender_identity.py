"""sender identity on the ledger, approval digests

Revision ID: 0002
Revises: 0001

From this revision on, migrations form a chain: 0001 is frozen, and each schema change
is a new revision that upgrades a database holding data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("sender_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sender_detail", sa.Text(), nullable=True))
    with op.batch_alter_table("approval_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approval_requests", schema=None) as batch_op:
        batch_op.drop_column("digest")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("sender_detail")
        batch_op.drop_column("sender_status")
        batch_op.drop_column("from_name")
