"""alerts: one row per kind of incident the operator is mailed about

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 21:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert',
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('mailed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('since_mail', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('kind')
    )


def downgrade() -> None:
    op.drop_table('alert')
