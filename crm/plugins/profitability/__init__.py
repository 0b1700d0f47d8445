"""Profitability assessment (客户盈利能力评估): lifetime value against the cost of keeping each
household and group, and the assessment of plans. Hook implementations only; the logic sits in
sibling modules."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("profitability", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.core.cliutil import lazy_commands

    lazy_commands(cli, ("profitability",), _profitability_commands)


def _profitability_commands(cli):
    from crm.plugins.profitability.commands import register

    register(cli)


@hookimpl
def assess_feedback(session, feedback, now):
    from crm.plugins.profitability.plans import assess_batch

    return assess_batch(session, feedback, now)


@hookimpl
def audit_vocabulary():
    from crm.plugins.profitability.vocab import audit_vocabulary

    return audit_vocabulary()
