"""Developers' tool: autogenerate a migration for the core or a plugin from its models.

    python scripts/make_migration.py service "add work order fees" svc0002

Builds every chain up to its head in a throw-away SQLite file, then writes the new revision of
the named chain with only that chain's tables (core: every table without a plugin prefix).
Read the generated file before committing it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine

from crm.core.migrate import chains, make_revision, upgrade
from crm.core.plugins import make_plugin_manager
from crm.plugins import BUILTIN_PLUGINS

PREFIXES = {
    "analysis": "ana_",
    "service": "svc_",
    "satisfaction": "sat_",
    "profitability": "prof_",
    "coordination": "coord_",
    "campaigns": "camp_",
}


def owns(name: str):
    """Whether a table belongs to the chain: a plugin's by its prefix, the core's by having none."""
    if name == "core":
        # The plugins' tables and their chains' version tables belong to their chains.
        others = (*PREFIXES.values(), "alembic_version_")
        return lambda table: not table.startswith(others)
    return lambda table: table.startswith(PREFIXES[name])


def main() -> None:
    name, message, rev_id = sys.argv[1:4]
    pm = make_plugin_manager(BUILTIN_PLUGINS)
    all_chains = chains(pm.hook.migration_locations())
    chain = next(c for c in all_chains if c.name == name)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'autogen.db'}")
        upgrade(engine, all_chains)
        # Every chain's models, so no other chain's table looks removed.
        for plugin in PREFIXES:
            __import__(f"crm.plugins.{plugin}.models")
        make_revision(engine, chain, message, rev_id, owns(name))


if __name__ == "__main__":
    main()
