"""national form in the cache and a covering exact-match index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:45:00.000000

Rows cached before this revision get an empty ``national``; lookups parse the caller's number for them, and
the next sync fills it in.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import core.models
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cachednumber', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('national', sqlmodel.sql.sqltypes.AutoString(length=30), server_default='', nullable=False)
        )
        batch_op.drop_index('ix_cachednumber_e164')
        batch_op.create_index(
            'ix_cachednumber_e164', ['e164', 'integration_id', 'generation', 'record_pk', 'national'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('cachednumber', schema=None) as batch_op:
        batch_op.drop_index('ix_cachednumber_e164')
        batch_op.create_index('ix_cachednumber_e164', ['e164', 'integration_id', 'generation'], unique=False)
        batch_op.drop_column('national')
