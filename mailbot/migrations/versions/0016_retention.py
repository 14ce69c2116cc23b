"""raw_message.purged_at, raw_message.imap_removed_at, case_document.purged_at,
case.anonymised_at: what retention and erasure removed, and when (issue #13)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_message') as batch:
        batch.add_column(sa.Column('purged_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('imap_removed_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('case_document') as batch:
        batch.add_column(sa.Column('purged_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('case') as batch:
        batch.add_column(sa.Column('anonymised_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('case') as batch:
        batch.drop_column('anonymised_at')
    with op.batch_alter_table('case_document') as batch:
        batch.drop_column('purged_at')
    with op.batch_alter_table('raw_message') as batch:
        batch.drop_column('imap_removed_at')
        batch.drop_column('purged_at')
