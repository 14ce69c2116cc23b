"""case_document.hazard and held: attachments that may hurt a reviewer or cannot be read
(macros, encryption, programs, disguised types, per-mail caps) are recorded, not forwarded

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 03:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_document') as batch:
        batch.add_column(sa.Column('hazard', sqlmodel.sql.sqltypes.AutoString(),
                                   nullable=False, server_default=''))
        batch.add_column(sa.Column('held', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('case_document') as batch:
        batch.drop_column('held')
        batch.drop_column('hazard')
