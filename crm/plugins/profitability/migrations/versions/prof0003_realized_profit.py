"""each household value keeps its realized relationship profit per year

Revision ID: prof0003
Revises: prof0002
Create Date: 2026-12-03 17:00:00

Beside the forecast lifetime value, a scoring stores what each household actually brought over
the cost window less what serving it cost, per year (已实现维系利润): the figure the reference
"50–60 % of customers are unprofitable" speaks of. Values of runs made before have none (NULL)
until the next scoring.
"""

import sqlalchemy as sa
from alembic import op

revision = "prof0003"
down_revision = "prof0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prof_household_values") as batch:
        batch.add_column(sa.Column("realized_profit", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prof_household_values") as batch:
        batch.drop_column("realized_profit")
