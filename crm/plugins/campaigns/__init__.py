"""Campaigns (营销与客户关怀活动): for now the four-year revisit programme (四年之约). Hook
implementations only; the logic sits in revisits.py, the commands in commands.py."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("campaigns", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.plugins.campaigns.commands import register

    register(cli)
