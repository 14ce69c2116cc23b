"""service_state: the last completed mailbox sweep and the IMAP connection's state, written
by the sweeping process, read by `mailbot health`, /healthz and /metrics (issue #14).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 06:10:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'service_state',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('last_sweep_at', sa.DateTime(), nullable=True),
        sa.Column('sweep_seconds', sa.Float(), nullable=False),
        sa.Column('imap_state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('imap_since', sa.DateTime(), nullable=True),
        sa.Column('imap_detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('service_state')
