"""the council's two phases: case.phase, guidance_given_at, klarmeldt_at; guidance.completes_guidance

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a case opened before this revision is in the guidance phase: with `[council] phases =
    # 2` it needs a klarmelding before it goes on an agenda (one already queued stays there)
    with op.batch_alter_table('case') as batch:
        batch.add_column(sa.Column('phase', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                   server_default='guidance'))
        batch.add_column(sa.Column('guidance_given_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('klarmeldt_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('guidance') as batch:
        batch.add_column(sa.Column('completes_guidance', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('guidance') as batch:
        batch.drop_column('completes_guidance')
    with op.batch_alter_table('case') as batch:
        batch.drop_column('klarmeldt_at')
        batch.drop_column('guidance_given_at')
        batch.drop_column('phase')
