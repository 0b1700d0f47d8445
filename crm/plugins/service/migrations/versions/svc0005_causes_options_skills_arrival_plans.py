"""causes, options offered, skills on work orders, arrival on site, improvement plans

Complaints record why the customer complained (svc_ticket_causes, at the feedback step) and
the options offered to the customer with the one chosen (svc_ticket_options); work orders name
the skill the job needs and when the worker arrived on site, and tickets keep their first
arrival for the time to arrive; improvement plans drawn from the periodic statistics
(svc_improvement_plans) have an owner and a due time.

Revision ID: svc0005
Revises: svc0003
Create Date: 2026-12-03 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "svc0005"
down_revision = "svc0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "svc_ticket_causes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["svc_tickets.id"],
            name=op.f("fk_svc_ticket_causes_ticket_id_svc_tickets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_svc_ticket_causes")),
        sa.UniqueConstraint("ticket_id", "cause", name=op.f("uq_svc_ticket_causes_ticket_id")),
    )
    with op.batch_alter_table("svc_ticket_causes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_svc_ticket_causes_cause"), ["cause"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_svc_ticket_causes_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "svc_ticket_options",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offered_by", sa.String(length=100), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("chosen_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["svc_tickets.id"],
            name=op.f("fk_svc_ticket_options_ticket_id_svc_tickets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_svc_ticket_options")),
        sa.UniqueConstraint("ticket_id", "seq", name=op.f("uq_svc_ticket_options_ticket_id")),
    )
    with op.batch_alter_table("svc_ticket_options", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_svc_ticket_options_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "svc_improvement_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=30), nullable=True),
        sa.Column("cause", sa.String(length=30), nullable=True),
        sa.Column("basis_count", sa.Integer(), nullable=True),
        sa.Column("basis", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["svc_staff.id"], name=op.f("fk_svc_improvement_plans_owner_id_svc_staff")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["svc_teams.id"], name=op.f("fk_svc_improvement_plans_team_id_svc_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_svc_improvement_plans")),
        sa.UniqueConstraint("number", name=op.f("uq_svc_improvement_plans_number")),
    )
    with op.batch_alter_table("svc_improvement_plans", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_svc_improvement_plans_owner_id"), ["owner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_svc_improvement_plans_status"), ["status"], unique=False
        )

    with op.batch_alter_table("svc_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("svc_work_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skill", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("svc_work_orders", schema=None) as batch_op:
        batch_op.drop_column("arrived_at")
        batch_op.drop_column("skill")
    with op.batch_alter_table("svc_tickets", schema=None) as batch_op:
        batch_op.drop_column("arrived_at")
    op.drop_table("svc_improvement_plans")
    op.drop_table("svc_ticket_options")
    op.drop_table("svc_ticket_causes")
