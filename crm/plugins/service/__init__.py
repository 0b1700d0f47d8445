"""Service handling (客户服务处理): complaints, repairs, property services and visits, each
followed to closure. Hook implementations only; the logic sits in sibling modules."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("service", str(Path(__file__).parent / "migrations"))


@hookimpl
def tracking_card_sections(session, household):
    from crm.plugins.service.card import service_overview
    from crm.plugins.service.retention import retention_sections

    return [service_overview(session, household), *retention_sections(session, household)]


@hookimpl
def service_record_states(session, record_nos):
    from crm.plugins.service.register import record_states

    return record_states(session, record_nos)


@hookimpl
def ticket_statistics(session, group_by, since, until):
    from crm.plugins.service.statistics import ticket_statistics

    return ticket_statistics(session, group_by, since, until)


@hookimpl
def service_signals(session, since):
    from crm.plugins.service.signals import service_signals

    return service_signals(session, since)


@hookimpl
def household_service_costs(session, since, until):
    from crm.plugins.service.costs import household_service_costs

    return household_service_costs(session, since, until)


@hookimpl
def classified_tickets(session, since, until):
    from crm.plugins.service.classification import classified_tickets

    return classified_tickets(session, since, until)


@hookimpl
def complaint_counts(session, since, until, grain):
    from crm.plugins.service.classification import complaint_counts

    return complaint_counts(session, since, until, grain)


@hookimpl
def register_commands(cli):
    from crm.core.cliutil import lazy_commands

    lazy_commands(cli, ("team", "staff", "workorder", "repair"), _dispatch_commands)
    lazy_commands(cli, ("fund",), _fund_commands)
    lazy_commands(cli, ("club", "activity"), _retention_commands)
    lazy_commands(cli, ("task",), _task_commands)
    lazy_commands(cli, ("ticket", "sla", "improvement"), _ticket_commands)


def _dispatch_commands(cli):
    from crm.plugins.service import dispatch_commands

    dispatch_commands.register(cli)


def _fund_commands(cli):
    from crm.plugins.service import fund_commands

    fund_commands.register(cli)


def _retention_commands(cli):
    from crm.plugins.service import retention_commands

    retention_commands.register(cli)


def _task_commands(cli):
    from crm.plugins.service import task_commands

    task_commands.register(cli)


def _ticket_commands(cli):
    # `crm ticket` gathers three modules' commands; record_commands also adds `improvement`.
    from crm.plugins.service import group_commands, record_commands, ticket_commands

    ticket_commands.register(cli)
    record_commands.register(cli)
    group_commands.register(cli)  # under `crm ticket`, so after it


@hookimpl
def build_demo_data(session, seed, now):
    from crm.plugins.service.demo import build_demo_data

    return build_demo_data(session, seed, now)


@hookimpl
def prepare_database(session):
    from crm.plugins.service.dispatch import ensure_default_teams
    from crm.plugins.service.sla import ensure_default_policies

    ensure_default_teams(session)
    ensure_default_policies(session)


@hookimpl
def carry_out_plans(session, instructions, now):
    from crm.plugins.service.tasks import carry_out_plans

    return carry_out_plans(session, instructions, now)


@hookimpl
def dispatch_outcomes(session, references):
    from crm.plugins.service.tasks import dispatch_outcomes

    return dispatch_outcomes(session, references)


@hookimpl
def scheduled_jobs(session, now):
    from crm.plugins.service.jobs import scheduled_jobs

    return scheduled_jobs(session, now)


@hookimpl
def shell_identifiers(session, limit):
    from crm.plugins.service.tickets import recent_numbers

    return {"登记号": recent_numbers(session, limit)}


@hookimpl
def audit_vocabulary():
    from crm.plugins.service.vocab import audit_vocabulary

    return audit_vocabulary()
