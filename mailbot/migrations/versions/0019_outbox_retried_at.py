"""outbox.retried_at: when the operator last put a failed or uncertain row back to pending
(`mailbot outbox retry`). smtp.give_up_hours counts from it, so a row retried days after it
was queued is not given up at its first passing failure.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 06:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('retried_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('retried_at')
