"""PostgreSQL: nine timestamp columns without time zone get one, as the models have

The nine columns later migrations added as `timestamp without time zone` become `timestamp
with time zone`, as the models (UTCDateTime) and every other timestamp are. On a naive column
PostgreSQL stores an aware value in the session's TimeZone and mailbot reads it back as if it
were UTC: on a server set to Europe/Copenhagen every such time was an hour or two off. The conversion reads the stored values in the session's TimeZone again, the inverse
of how they were written (PostgreSQL docs 8.5.1.3, "Time Stamps"). SQLite has one DATETIME
type for both: nothing changes there.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 09:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

NAIVE = (('case', 'guidance_given_at'), ('case', 'klarmeldt_at'), ('case', 'anonymised_at'),
         ('case_document', 'purged_at'), ('outbox', 'retried_at'), ('raw_message', 'purged_at'),
         ('raw_message', 'imap_removed_at'), ('service_state', 'last_sweep_at'),
         ('service_state', 'imap_since'))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in NAIVE:
        op.alter_column(table, column, type_=UTCDateTime(), existing_type=sa.DateTime(),
                        existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in NAIVE:
        op.alter_column(table, column, type_=sa.DateTime(), existing_type=UTCDateTime(),
                        existing_nullable=True)
