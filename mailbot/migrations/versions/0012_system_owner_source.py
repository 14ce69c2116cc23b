"""case.system_owner_source, _note and _checked_at: where the system owner came from (the
brief, the applicant, KITOS); kitos_lookup: KITOS's answer per system name, cached

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 10:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case') as batch:
        batch.add_column(sa.Column('system_owner_source', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch.add_column(sa.Column('system_owner_note', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch.add_column(sa.Column('system_owner_checked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # an owner the brief named before this revision came from the brief
    op.execute("UPDATE \"case\" SET system_owner_source = 'brief' "
               "WHERE system_owner IS NOT NULL AND system_owner != ''")
    op.create_table('kitos_lookup',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('looked_up_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('kitos_lookup')
    with op.batch_alter_table('case') as batch:
        batch.drop_column('system_owner_checked_at')
        batch.drop_column('system_owner_note')
        batch.drop_column('system_owner_source')
