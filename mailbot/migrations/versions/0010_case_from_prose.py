"""case.from_prose: the questions whose answer was understood from unlabelled prose

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 22:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case') as batch:
        batch.add_column(sa.Column('from_prose', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('case') as batch:
        batch.drop_column('from_prose')
