"""service register kept by plugins; enquiries

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD_KINDS = (
    "kind IN ('complaint', 'suggestion', 'title_certificate', 'move_in', 'property_service', "
    "'repair', 'visit')"
)
NEW_KINDS = (
    "kind IN ('complaint', 'suggestion', 'enquiry', 'title_certificate', 'move_in', "
    "'property_service', 'repair', 'visit')"
)


def upgrade() -> None:
    with op.batch_alter_table("service_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("managed_by", sa.String(length=30), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_service_records_managed_by"), ["managed_by"], unique=False
        )
        batch_op.drop_constraint(batch_op.f("ck_service_records_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_service_records_kind"), NEW_KINDS)


def downgrade() -> None:
    with op.batch_alter_table("service_records", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_service_records_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_service_records_kind"), OLD_KINDS)
        batch_op.drop_index(batch_op.f("ix_service_records_managed_by"))
        batch_op.drop_column("managed_by")
