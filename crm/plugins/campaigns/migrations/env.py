"""Alembic environment of the campaigns plugin's chain (see crm.core.migrate)."""

import crm.plugins.campaigns.models  # noqa: F401  the tables this chain creates
from crm.core.migrate import run_migrations

run_migrations()
