"""case.project_type, project_type_reason, project_type_source: digitaliseringsprojekt or
it-projekt, proposed by the bot or chosen by the secretary

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 09:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case') as batch:
        batch.add_column(sa.Column('project_type', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column('project_type_reason', sqlmodel.sql.sqltypes.AutoString(),
                                   nullable=False, server_default=''))
        batch.add_column(sa.Column('project_type_source', sqlmodel.sql.sqltypes.AutoString(),
                                   nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('case') as batch:
        batch.drop_column('project_type_source')
        batch.drop_column('project_type_reason')
        batch.drop_column('project_type')
