"""visit appointments, opinions by kind and confirmed rectifications

The visit procedure's steps 3.1-3.6: the agreed appointment (time and the customer's contact),
each opinion heard with its kind, and a rectification that stays open until the customer
confirms it on a follow-up visit (or sends it back to be rectified again). Rectifications
recorded before this revision were closed by the follow-up that followed them: those already
rectified and followed up by a visit the customer was satisfied with count as confirmed.

Revision ID: camp0004
Revises: camp0003
Create Date: 2026-12-03 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "camp0004"
down_revision = "camp0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camp_visit_appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("due_month", sa.String(length=7), nullable=False),
        sa.Column("appointed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contact", sa.String(length=100), nullable=False),
        sa.Column("agreed_by", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("visit_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_camp_visit_appointments_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_camp_visit_appointments_purchase_id_purchases"),
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["camp_visits.id"],
            name=op.f("fk_camp_visit_appointments_visit_id_camp_visits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camp_visit_appointments")),
    )
    with op.batch_alter_table("camp_visit_appointments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_camp_visit_appointments_household_id"), ["household_id"], unique=False
        )
        batch_op.create_index(
            "ix_camp_visit_appointments_purchase_month", ["purchase_id", "due_month"], unique=False
        )

    op.create_table(
        "camp_visit_opinions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('opinion', 'suggestion', 'praise', 'out_of_scope')",
            name=op.f("ck_camp_visit_opinions_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["camp_visits.id"],
            name=op.f("fk_camp_visit_opinions_visit_id_camp_visits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camp_visit_opinions")),
    )
    with op.batch_alter_table("camp_visit_opinions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_camp_visit_opinions_visit_id"), ["visit_id"], unique=False
        )

    with op.batch_alter_table("camp_rectifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rounds", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("rejected_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("confirmed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("confirmed_visit_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_camp_rectifications_confirmed_visit_id_camp_visits"),
            "camp_visits",
            ["confirmed_visit_id"],
            ["id"],
        )

    # Rectifications done before this revision: one round each, and confirmed by the earliest
    # satisfied (4-5) follow-up of their visit made on or after the rectification.
    rect = sa.table(
        "camp_rectifications",
        sa.column("id", sa.Integer),
        sa.column("visit_id", sa.Integer),
        sa.column("done_on", sa.Date),
        sa.column("rounds", sa.Integer),
        sa.column("confirmed_on", sa.Date),
        sa.column("confirmed_visit_id", sa.Integer),
    )
    visits = sa.table(
        "camp_visits",
        sa.column("id", sa.Integer),
        sa.column("follows_visit_id", sa.Integer),
        sa.column("visited_on", sa.Date),
        sa.column("satisfaction", sa.Integer),
    )
    bind = op.get_bind()
    bind.execute(sa.update(rect).where(rect.c.done_on.is_not(None)).values(rounds=1))
    done = bind.execute(
        sa.select(rect.c.id, rect.c.visit_id, rect.c.done_on).where(rect.c.done_on.is_not(None))
    ).all()
    for item_id, visit_id, done_on in done:
        follow_up = bind.execute(
            sa.select(visits.c.id, visits.c.visited_on)
            .where(
                visits.c.follows_visit_id == visit_id,
                visits.c.satisfaction >= 4,
                visits.c.visited_on >= done_on,
            )
            .order_by(visits.c.visited_on, visits.c.id)
            .limit(1)
        ).first()
        if follow_up is not None:
            bind.execute(
                sa.update(rect)
                .where(rect.c.id == item_id)
                .values(confirmed_on=follow_up.visited_on, confirmed_visit_id=follow_up.id)
            )


def downgrade() -> None:
    with op.batch_alter_table("camp_rectifications", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_camp_rectifications_confirmed_visit_id_camp_visits"),
            type_="foreignkey",
        )
        batch_op.drop_column("confirmed_visit_id")
        batch_op.drop_column("confirmed_on")
        batch_op.drop_column("rejected_on")
        batch_op.drop_column("rounds")
    with op.batch_alter_table("camp_visit_opinions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_camp_visit_opinions_visit_id"))
    op.drop_table("camp_visit_opinions")
    with op.batch_alter_table("camp_visit_appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_camp_visit_appointments_purchase_month")
        batch_op.drop_index(batch_op.f("ix_camp_visit_appointments_household_id"))
    op.drop_table("camp_visit_appointments")
