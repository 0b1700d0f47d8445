"""Coordination and dispatch (协调控制): the orchestrator that chains feedback -> assessment ->
plan -> dispatch through hooks only, and keeps the log of every decision. Hook
implementations only; the cycle sits in cycle.py, the commands in commands.py."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("coordination", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.core.cliutil import lazy_commands

    lazy_commands(cli, ("coordinate",), _coordination_commands)


def _coordination_commands(cli):
    from crm.plugins.coordination.commands import register

    register(cli)


@hookimpl
def scheduled_jobs(session, now):
    from crm.plugins.coordination.jobs import scheduled_jobs

    return scheduled_jobs(session, now)


@hookimpl
def audit_vocabulary():
    from crm.plugins.coordination.vocab import audit_vocabulary

    return audit_vocabulary()
