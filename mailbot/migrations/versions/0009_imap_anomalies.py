"""imap anomalies: raw_message.generation (a reused UID, SCENARIOS I2) in the unique key,
raw_message.imap_anomaly (I2, I6, C2), and fetch_failure (I10)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 22:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# 0001 created the unique key without a name: SQLite reflects it as unnamed (batch mode
# names it by this convention), PostgreSQL named it <table>_<columns>_key
_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
_OLD_SQLITE = "uq_raw_message_folder_uidvalidity_uid"
_OLD_POSTGRES = "raw_message_folder_uidvalidity_uid_key"
_NEW = "uq_raw_message_uid_generation"


def _old_name() -> str:
    return _OLD_POSTGRES if op.get_bind().dialect.name == "postgresql" else _OLD_SQLITE


def upgrade() -> None:
    with op.batch_alter_table('raw_message', schema=None,
                              naming_convention=_CONVENTION) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('imap_anomaly', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default=''))
        batch_op.drop_constraint(_old_name(), type_='unique')
        batch_op.create_unique_constraint(_NEW, ['folder', 'uidvalidity', 'uid', 'generation'])
    with op.batch_alter_table('raw_message', schema=None) as batch_op:
        batch_op.alter_column('generation', server_default=None)
        batch_op.alter_column('imap_anomaly', server_default=None)
    op.create_table('fetch_failure',
    sa.Column('folder', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=False),
    sa.Column('uid', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('folder', 'uidvalidity', 'uid')
    )


def downgrade() -> None:
    op.drop_table('fetch_failure')
    with op.batch_alter_table('raw_message', schema=None,
                              naming_convention=_CONVENTION) as batch_op:
        batch_op.drop_constraint(_NEW, type_='unique')
        batch_op.create_unique_constraint(_old_name(), ['folder', 'uidvalidity', 'uid'])
        batch_op.drop_column('imap_anomaly')
        batch_op.drop_column('generation')
