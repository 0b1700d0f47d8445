"""core customer database

Revision ID: 0001
Revises:
Create Date: 2026-11-25 17:09:08.222299
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.String(length=50), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_log_entity", ["entity", "entity_id"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("city", sa.String(length=50), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_buildings_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_buildings_project_id")),
    )
    with op.batch_alter_table("buildings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_buildings_project_id"), ["project_id"], unique=False)

    op.create_table(
        "households",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("income_band", sa.String(length=20), nullable=True),
        sa.Column("housing", sa.String(length=20), nullable=True),
        sa.Column("education", sa.String(length=30), nullable=True),
        sa.Column("occupation", sa.String(length=100), nullable=True),
        sa.Column("club_activities", sa.String(length=200), nullable=True),
        sa.Column("member_tier", sa.String(length=20), nullable=False),
        sa.Column("consent_contact", sa.Boolean(), nullable=False),
        sa.Column("consent_marketing", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('prospective', 'existing')", name=op.f("ck_households_status")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_households_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_households")),
        sa.UniqueConstraint("code", name=op.f("uq_households_code")),
    )
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_households_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_households_project_id"), ["project_id"], unique=False)

    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("phone_enc", sa.String(length=120), nullable=True),
        sa.Column("phone_hash", sa.String(length=64), nullable=True),
        sa.Column("phone_tail", sa.String(length=4), nullable=True),
        sa.Column("alt_phone_enc", sa.String(length=120), nullable=True),
        sa.Column("id_number_enc", sa.String(length=120), nullable=True),
        sa.Column("id_number_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('owner', 'co_owner', 'family', 'tenant')", name=op.f("ck_members_role")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name=op.f("fk_members_household_id_households")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("household_id", "name", name=op.f("uq_members_household_id")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_members_household_id"), ["household_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_members_id_number_hash"), ["id_number_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_members_phone_hash"), ["phone_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_members_phone_tail"), ["phone_tail"], unique=False)

    op.create_table(
        "units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=30), nullable=False),
        sa.Column("floor_area", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"], ["buildings.id"], name=op.f("fk_units_building_id_buildings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
        sa.UniqueConstraint("building_id", "code", name=op.f("uq_units_building_id")),
    )
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_units_building_id"), ["building_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_units_code"), ["code"], unique=False)

    op.create_table(
        "purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_no", sa.String(length=50), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("purchase_date", sa.Date(), nullable=False),
        sa.Column("floor_area", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("referrer_household_id", sa.Integer(), nullable=True),
        sa.Column("promotions_attended", sa.Integer(), nullable=False),
        sa.Column("handover_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name=op.f("fk_purchases_household_id_households")
        ),
        sa.ForeignKeyConstraint(
            ["referrer_household_id"],
            ["households.id"],
            name=op.f("fk_purchases_referrer_household_id_households"),
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_purchases_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("contract_no", name=op.f("uq_purchases_contract_no")),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_purchases_handover_date"), ["handover_date"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_purchases_household_id"), ["household_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_purchases_purchase_date"), ["purchase_date"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_purchases_referrer_household_id"),
            ["referrer_household_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_purchases_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "service_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_no", sa.String(length=50), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('complaint', 'suggestion', 'title_certificate', 'move_in', 'property_service', 'repair', 'visit')",
            name=op.f("ck_service_records_kind"),
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_service_records_status")),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_service_records_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_service_records_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_records")),
        sa.UniqueConstraint("record_no", name=op.f("uq_service_records_record_no")),
    )
    with op.batch_alter_table("service_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_records_household_id"), ["household_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_service_records_kind"), ["kind"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_service_records_opened_at"), ["opened_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_service_records_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referrer_household_id", sa.Integer(), nullable=False),
        sa.Column("referred_household_id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("referred_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_referrals_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["referred_household_id"],
            ["households.id"],
            name=op.f("fk_referrals_referred_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["referrer_household_id"],
            ["households.id"],
            name=op.f("fk_referrals_referrer_household_id_households"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint(
            "referrer_household_id",
            "referred_household_id",
            name=op.f("uq_referrals_referrer_household_id"),
        ),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referrals_referred_household_id"),
            ["referred_household_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_referrals_referrer_household_id"),
            ["referrer_household_id"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_referrer_household_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_referred_household_id"))

    op.drop_table("referrals")
    with op.batch_alter_table("service_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_records_unit_id"))
        batch_op.drop_index(batch_op.f("ix_service_records_opened_at"))
        batch_op.drop_index(batch_op.f("ix_service_records_kind"))
        batch_op.drop_index(batch_op.f("ix_service_records_household_id"))

    op.drop_table("service_records")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchases_unit_id"))
        batch_op.drop_index(batch_op.f("ix_purchases_referrer_household_id"))
        batch_op.drop_index(batch_op.f("ix_purchases_purchase_date"))
        batch_op.drop_index(batch_op.f("ix_purchases_household_id"))
        batch_op.drop_index(batch_op.f("ix_purchases_handover_date"))

    op.drop_table("purchases")
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_units_code"))
        batch_op.drop_index(batch_op.f("ix_units_building_id"))

    op.drop_table("units")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_members_phone_tail"))
        batch_op.drop_index(batch_op.f("ix_members_phone_hash"))
        batch_op.drop_index(batch_op.f("ix_members_id_number_hash"))
        batch_op.drop_index(batch_op.f("ix_members_household_id"))

    op.drop_table("members")
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_households_project_id"))
        batch_op.drop_index(batch_op.f("ix_households_name"))

    op.drop_table("households")
    with op.batch_alter_table("buildings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_buildings_project_id"))

    op.drop_table("buildings")
    op.drop_table("settings")
    op.drop_table("projects")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_entity")
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
