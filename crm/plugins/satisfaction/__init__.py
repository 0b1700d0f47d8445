"""Satisfaction monitoring (客户满意度监测与反馈): surveys, satisfaction = experience − expectation,
KPIs and early warning. Hook implementations only; the logic sits in sibling modules."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("satisfaction", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.plugins.satisfaction.commands import register

    register(cli)


@hookimpl
def ticket_revisited(session, ticket, csat, nps, aspects, comment, actor):
    from crm.plugins.satisfaction.surveys import record_revisit

    record_revisit(session, ticket, csat, nps, aspects, comment, actor)


@hookimpl
def collect_feedback(session, limit):
    from crm.plugins.satisfaction.warnings import hand_feedback

    return hand_feedback(session, limit)
