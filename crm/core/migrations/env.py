"""Alembic environment of the core chain (see crm.core.migrate)."""

from crm.core.migrate import run_migrations

run_migrations()
