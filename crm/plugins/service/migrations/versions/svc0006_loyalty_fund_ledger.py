"""一路同行 loyalty fund ledger

One table: each project's fund lines (allocation from profit, household contributions,
spending on activities, gifts and other care for owners).

Revision ID: svc0006
Revises: svc0005
Create Date: 2026-12-03 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "svc0006"
down_revision = "svc0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "svc_loyalty_fund_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=True),
        sa.Column("work_order_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["svc_reward_activities.id"],
            name=op.f("fk_svc_loyalty_fund_entries_activity_id_svc_reward_activities"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_svc_loyalty_fund_entries_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_svc_loyalty_fund_entries_project_id_projects"),
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["svc_work_orders.id"],
            name=op.f("fk_svc_loyalty_fund_entries_work_order_id_svc_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_svc_loyalty_fund_entries")),
    )
    with op.batch_alter_table("svc_loyalty_fund_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_svc_loyalty_fund_entries_household_id"), ["household_id"], unique=False
        )
        batch_op.create_index(
            "ix_svc_loyalty_fund_entries_project_year", ["project_id", "year"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("svc_loyalty_fund_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_svc_loyalty_fund_entries_project_year")
        batch_op.drop_index(batch_op.f("ix_svc_loyalty_fund_entries_household_id"))
    op.drop_table("svc_loyalty_fund_entries")
