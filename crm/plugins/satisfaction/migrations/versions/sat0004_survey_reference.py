"""survey reference

Where a survey not about a ticket came from (a visit of the four-year programme:
camp_visit:<id>), so a correction of that visit replaces its answers.

Revision ID: sat0004
Revises: sat0003
Create Date: 2026-12-03 14:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "sat0004"
down_revision = "sat0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sat_surveys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=60), nullable=True))
        batch_op.create_index(batch_op.f("ix_sat_surveys_reference"), ["reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sat_surveys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sat_surveys_reference"))
        batch_op.drop_column("reference")
