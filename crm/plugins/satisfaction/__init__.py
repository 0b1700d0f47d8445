"""Satisfaction monitoring (客户满意度监测与反馈): surveys, satisfaction = experience − expectation,
KPIs and early warning. Hook implementations only; the logic sits in sibling modules."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("satisfaction", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.core.cliutil import lazy_commands

    lazy_commands(cli, ("survey", "satisfaction"), _satisfaction_commands)


def _satisfaction_commands(cli):
    from crm.plugins.satisfaction.commands import register

    register(cli)


@hookimpl
def tickets_revisited(session, revisits):
    from crm.plugins.satisfaction.surveys import record_revisits

    record_revisits(session, revisits)


@hookimpl
def ticket_causes_recorded(session, causes):
    from crm.plugins.satisfaction.surveys import record_ticket_causes

    record_ticket_causes(session, causes)


@hookimpl
def households_visited(session, visits):
    from crm.plugins.satisfaction.surveys import record_visits

    record_visits(session, visits)


@hookimpl
def household_facts(session, until):
    from crm.plugins.satisfaction.surveys import satisfaction_gap_per_household

    return {"satisfaction_gap": satisfaction_gap_per_household(session, until)}


@hookimpl(trylast=True)  # after service handling's demo, so its summary counts the revisits
def build_demo_data(session, seed, now):
    from crm.plugins.satisfaction.demo import build_demo_data

    return build_demo_data(session, seed, now)


@hookimpl
def collect_feedback(session, limit, now):
    from crm.plugins.satisfaction.warnings import hand_feedback

    return hand_feedback(session, limit, now)


@hookimpl
def get_feedback(session, feedback_id):
    from crm.plugins.satisfaction.warnings import get_feedback

    return get_feedback(session, feedback_id)


@hookimpl
def scheduled_jobs(session, now):
    from crm.plugins.satisfaction.jobs import scheduled_jobs

    return scheduled_jobs(session, now)


@hookimpl
def audit_vocabulary():
    from crm.plugins.satisfaction.vocab import audit_vocabulary

    return audit_vocabulary()
