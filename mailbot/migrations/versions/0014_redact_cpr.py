"""Redact CPR numbers in what an existing database already holds: the cases' titles, subjects,
answers, declarations and reasons, the documents' names and notes, the reviews' comments and
document lists, the events' details and the ledger's subjects (SCENARIOS G1). From this
revision on, mailbot stores them redacted; the raw mail and the attachments keep the
original bytes (they are the record).

Data only, no schema change. Python row by row (SQLite and PostgreSQL alike; a JSON column is
read and written through sa.JSON), only rows that change are written.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 03:00:00
"""
from typing import Any

import sqlalchemy as sa
from alembic import op

from mailbot.redact import redact_data

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# table -> its text and JSON columns that may hold what an applicant or a reviewer wrote
_TEXT, _JSON = sa.String(), sa.JSON()
_COLUMNS: dict[str, dict[str, Any]] = {
    'case': {'title': _TEXT, 'subject': _TEXT, 'answers': _JSON, 'not_applicable': _JSON,
             'strategic_reason': _TEXT, 'project_type_reason': _TEXT, 'system_owner': _TEXT,
             'system_owner_note': _TEXT, 'decision_text': _TEXT, 'when': _JSON,
             'cost': _JSON},
    'case_document': {'filename': _TEXT, 'note': _TEXT},
    'review': {'comment': _TEXT, 'documents': _JSON},
    'case_event': {'detail': _TEXT},
    'raw_message': {'subject': _TEXT, 'reason': _TEXT},
}


def upgrade() -> None:
    connection = op.get_bind()
    for name, columns in _COLUMNS.items():
        table = sa.table(name, sa.column('id', sa.Integer()),
                         *(sa.column(column, kind) for column, kind in columns.items()))
        rows = connection.execute(sa.select(table)).mappings().all()
        for row in rows:
            changed = {column: redact_data(row[column]) for column in columns
                       if row[column] is not None and redact_data(row[column]) != row[column]}
            if changed:
                connection.execute(sa.update(table).where(table.c.id == row['id'])
                                   .values(**changed))


def downgrade() -> None:
    pass  # a redacted number cannot be restored; the raw mail still holds the original
