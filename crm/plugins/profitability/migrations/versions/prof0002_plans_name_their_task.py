"""plans name the task they give to staff, not a ticket type

Revision ID: prof0002
Revises: prof0001
Create Date: 2026-12-02 19:00:00

Coordination's plans no longer open tickets in the customer's name; each names the task it
gives to staff (setting profitability.plans.<code>.task, default from the catalogue). A ticket
type a manager once set has no meaning any more and is removed rather than left to mislead.
"""

from alembic import op

revision = "prof0002"
down_revision = "prof0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM settings WHERE key LIKE 'profitability.plans.%.ticket_type'")


def downgrade() -> None:
    # The removed ticket types were overrides of defaults; the defaults apply again.
    pass
