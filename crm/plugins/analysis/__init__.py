"""Customer data analysis (客户数据管理与分析): purchases, repeat purchase and referral (再销售)
seen per household. Hook implementations only; the logic sits in sibling modules."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("analysis", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.core.cliutil import lazy_commands

    lazy_commands(cli, ("analysis",), _analysis_commands)


def _analysis_commands(cli):
    from crm.plugins.analysis.commands import register

    register(cli)


@hookimpl
def tracking_card_sections(session, household):
    from crm.plugins.analysis.card import purchase_overview, segment_and_propensity

    sections = [purchase_overview(session, household), segment_and_propensity(session, household)]
    return [section for section in sections if section is not None]


@hookimpl
def household_segments(session):
    from crm.plugins.analysis.segments import latest_segment_names

    return latest_segment_names(session)


@hookimpl
def propensity_scores(session, target):
    from crm.plugins.analysis.propensity import latest_scores

    return latest_scores(session, target)


@hookimpl
def suggest_classification(session, text, ticket_type):
    from crm.plugins.analysis.classifier import suggest

    return suggest(session, text, ticket_type)


@hookimpl(trylast=True)  # a hint, shown after the plugins' data lines
def build_demo_data(session, seed, now):
    # Analysis adds no rows of its own: it learns from what the demo built.
    return [
        (
            "试试：crm --as 李分析:analyst analysis segments、"
            "crm --as 李分析:analyst analysis propensity train --target buy_again、"
            "crm --as 李分析:analyst analysis classify train、crm analysis hotspots"
        )
    ]


@hookimpl
def audit_vocabulary():
    from crm.plugins.analysis.vocab import audit_vocabulary

    return audit_vocabulary()
