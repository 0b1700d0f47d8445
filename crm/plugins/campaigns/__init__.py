"""Campaigns (营销与客户关怀活动): referral and loyalty campaigns (campaigns.py), the 6+2
lifecycle touchpoints (lifecycle.py), the four-year revisit programme (四年之约, revisits.py) and
their jobs for the core scheduler (jobs.py). Hook implementations only; the commands sit in
commands.py (revisit) and campaign_commands.py."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("campaigns", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.core.cliutil import lazy_commands

    lazy_commands(cli, ("revisit",), _revisit_commands)
    lazy_commands(cli, ("campaign",), _campaign_commands)


def _revisit_commands(cli):
    from crm.plugins.campaigns import commands

    commands.register(cli)


def _campaign_commands(cli):
    from crm.plugins.campaigns import campaign_commands

    campaign_commands.register(cli)


@hookimpl
def scheduled_jobs(session, now):
    from crm.plugins.campaigns.jobs import scheduled_jobs

    return scheduled_jobs(session, now)


@hookimpl
def build_demo_data(session, seed, now):
    # Campaigns are created by the teams, not by the demo: say what the revisit programme and
    # the lifecycle have to work on.
    from crm.core.clock import add_months, local_today
    from crm.plugins.campaigns.revisits import due_count

    month = f"{add_months(local_today(now).replace(day=1), 1):%Y-%m}"
    due = due_count(session, month)
    return [
        (
            f"四年之约  {month} 到期走访 {due:,} 户；试试：crm revisit due --month {month}、"
            f"crm revisit report --month {month} -o 走访汇总.xlsx、"
            "crm --as 王经理:manager campaign plan-touchpoints --days 30"
        )
    ]


@hookimpl
def audit_vocabulary():
    from crm.plugins.campaigns.vocab import audit_vocabulary

    return audit_vocabulary()
