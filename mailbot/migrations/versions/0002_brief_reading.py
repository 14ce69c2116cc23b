"""brief reading: declarations, strategic flag, SBSYS number, system owner, normalised when/cost

Server defaults let the columns be added to a database that already holds cases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:45:12.533065
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('not_applicable', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('strategic', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('strategic_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('sbsys_number', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('system_owner', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('when', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('cost', sa.JSON(), nullable=True))

    with op.batch_alter_table('case_document', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))



def downgrade() -> None:
    with op.batch_alter_table('case_document', schema=None) as batch_op:
        batch_op.drop_column('note')

    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_column('cost')
        batch_op.drop_column('when')
        batch_op.drop_column('system_owner')
        batch_op.drop_column('sbsys_number')
        batch_op.drop_column('strategic_reason')
        batch_op.drop_column('strategic')
        batch_op.drop_column('not_applicable')

