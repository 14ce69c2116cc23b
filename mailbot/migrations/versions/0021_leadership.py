"""leadership: who leads (holds the leader lock) and since when, written by the leader when it
takes the lock, read by `mailbot status`, `check` and `health` (issue #15). A table of its own,
not columns of service_state: service_state is what the sweeping process saw of the mailbox,
rewritten at every sweep; this row changes only when the leadership does, and is written by a
process that may not have swept yet (a standby that just took over).

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 09:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'leadership',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('host', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('leadership')
