"""inbound_messages.body_sha256: a copy by Message-ID must have the same body.

A message carrying the Message-ID of an earlier one was taken for its copy and never read,
whoever sent either: a copier's predictable id (`<0000123@scanner…>`) sent first, in
anything, swallowed the real message after it. The poller now keeps the digest of the
bytes after the header block, and a Message-ID makes a copy only with the same body. Rows
stored before have none, so only their bytes can make a later message their copy.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("body_sha256")
