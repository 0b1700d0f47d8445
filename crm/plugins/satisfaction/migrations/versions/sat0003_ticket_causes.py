"""ticket causes: why each customer complained, as service handling reported it

Revision ID: sat0003
Revises: sat0002
Create Date: 2026-12-03 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "sat0003"
down_revision = "sat0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sat_ticket_causes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_number", sa.String(length=40), nullable=False),
        sa.Column("cause", sa.String(length=30), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sat_ticket_causes")),
        sa.UniqueConstraint(
            "ticket_number", "cause", name=op.f("uq_sat_ticket_causes_ticket_number")
        ),
    )
    with op.batch_alter_table("sat_ticket_causes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sat_ticket_causes_ticket_number"), ["ticket_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sat_ticket_causes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sat_ticket_causes_ticket_number"))
    op.drop_table("sat_ticket_causes")
