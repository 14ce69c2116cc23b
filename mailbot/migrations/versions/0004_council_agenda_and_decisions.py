"""council agenda and decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:09:32.111551
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('agenda',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_date', sa.Date(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('case_refs', sa.JSON(), nullable=False),
    sa.Column('waiting_refs', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('meeting_date', 'version')
    )
    with op.batch_alter_table('agenda', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agenda_meeting_date'), ['meeting_date'], unique=False)

    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ready_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('meeting_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('decision_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_column('decided_at')
        batch_op.drop_column('decision_text')
        batch_op.drop_column('decision')
        batch_op.drop_column('meeting_date')
        batch_op.drop_column('ready_at')

    with op.batch_alter_table('agenda', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agenda_meeting_date'))

    op.drop_table('agenda')

