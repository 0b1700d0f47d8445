"""Alembic environment of the analysis plugin's chain (see crm.core.migrate)."""

import crm.plugins.analysis.models  # noqa: F401  the tables this chain creates
from crm.core.migrate import run_migrations

run_migrations()
