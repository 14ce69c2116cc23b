"""blob and bot_secret: raw mail, attachments and the signing secret in the database, so
every host on one PostgreSQL database reads them without a shared disk (issue #15).

The secret is stored here, once: the value of data_dir/secret of the host that migrates when
that file exists (mailbot.db.migrate's secret_file; replies to mail it signed before still
verify), else a random one.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 09:00:00
"""
import secrets
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import sqlmodel
from alembic import context, op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'blob',
        sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('touched_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256'),
    )
    op.create_table(
        'bot_secret',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('value', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    secret_file = context.config.attributes.get('secret_file')
    old = ''
    if isinstance(secret_file, Path) and secret_file.is_file():
        old = secret_file.read_text().strip()
    table = sa.table('bot_secret', sa.column('name', sa.String()),
                     sa.column('value', sa.String()),
                     sa.column('created_at', sa.DateTime(timezone=True)))
    op.bulk_insert(table, [{'name': 'signing', 'value': old or secrets.token_hex(32),
                            'created_at': datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table('bot_secret')
    op.drop_table('blob')
