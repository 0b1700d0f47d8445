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

    return [service_overview(session, household)]
