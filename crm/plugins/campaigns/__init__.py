"""Campaigns (营销与客户关怀活动): referral and loyalty campaigns (campaigns.py), the 6+2
lifecycle touchpoints (lifecycle.py), the four-year revisit programme (四年之约, revisits.py) and
the scheduler that runs them (scheduler.py). Hook implementations only; the commands sit in
commands.py (revisit), campaign_commands.py and scheduler_commands.py."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("campaigns", str(Path(__file__).parent / "migrations"))


@hookimpl
def register_commands(cli):
    from crm.plugins.campaigns import campaign_commands, commands, scheduler_commands

    commands.register(cli)
    campaign_commands.register(cli)
    scheduler_commands.register(cli)
