"""guidance.verdict and guidance.comment: each relayed comment keeps the words it had when it
was queued. A reviewer who answered twice within the batch window had the later answer
relayed twice and the first lost, since both items read the review's one comment.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 04:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('guidance') as batch:
        batch.add_column(sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(),
                                   nullable=False, server_default=''))
        batch.add_column(sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(),
                                   nullable=False, server_default=''))
    # items queued before this revision: the review's words are the best there is
    op.execute("UPDATE guidance SET "
               "verdict = COALESCE((SELECT review.verdict FROM review "
               "WHERE review.id = guidance.review_id), ''), "
               "comment = COALESCE((SELECT review.comment FROM review "
               "WHERE review.id = guidance.review_id), '')")


def downgrade() -> None:
    with op.batch_alter_table('guidance') as batch:
        batch.drop_column('comment')
        batch.drop_column('verdict')
