"""THE contract between the core and the plugins: every hook, one docstring line each.

Hooks take keyword arguments; an implementation names only the arguments it needs.
The coordination chain runs feedback -> assessment -> plan -> dispatch through the last three.
Heavy types are imported only for type checkers so `crm --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from sqlalchemy.orm import Session

    from crm.core.card import CardSection
    from crm.core.chain import Assessment, Dispatch, Feedback, Plan
    from crm.core.models import Household

hookspec = pluggy.HookspecMarker("crm")


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add a plugin's click groups and commands to the root `crm` group."""


@hookspec
def tracking_card_sections(session: Session, household: Household) -> list[CardSection] | None:
    """Contribute sections to a household's tracking card (客户资料跟踪卡)."""


@hookspec
def collect_feedback(session: Session, limit: int) -> list[Feedback] | None:
    """Hand pending feedback records (e.g. satisfaction early warnings) to coordination."""


@hookspec(firstresult=True)
def assess_feedback(session: Session, feedback: Feedback) -> Assessment | None:
    """Evaluate one feedback record: the candidate plans and the best of them."""


@hookspec(firstresult=True)
def carry_out_plan(session: Session, feedback: Feedback, plan: Plan) -> Dispatch | None:
    """Carry out a chosen plan: open the tickets or work orders and assign them."""
