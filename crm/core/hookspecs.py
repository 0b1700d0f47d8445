"""THE contract between the core and the plugins: every hook, one docstring line each.

Hooks take keyword arguments; an implementation names only the arguments it needs.
The coordination chain runs feedback -> assessment -> plan -> dispatch through the last three.
Heavy types are imported only for type checkers so `crm --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import datetime as dt

    import click
    from sqlalchemy.orm import Session

    from crm.core.card import CardSection
    from crm.core.chain import (
        Assessment,
        Dispatch,
        Feedback,
        Instruction,
        Revisit,
        ServiceSignal,
        VisitAnswers,
        WorkOutcome,
    )
    from crm.core.models import Household

hookspec = pluggy.HookspecMarker("crm")


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add a plugin's click groups and commands to the root `crm` group (crm.core.cliutil.lazy_commands defers their import until one runs)."""


@hookspec
def migration_locations() -> tuple[str, str] | None:
    """Name a plugin's own alembic chain: (plugin name, folder holding env.py and versions/)."""


@hookspec
def prepare_database(session: Session) -> None:
    """After migrations: insert a plugin's reference data if missing (idempotent; no commit)."""


@hookspec
def build_demo_data(session: Session, seed: int, now: dt.datetime) -> list[str] | None:
    """Add a plugin's sample data to a freshly built demo portfolio; return summary lines."""


@hookspec
def tracking_card_sections(session: Session, household: Household) -> list[CardSection] | None:
    """Contribute sections to a household's tracking card (客户资料跟踪卡)."""


@hookspec
def audit_vocabulary() -> dict | None:
    """Name a plugin's audit entries in Chinese: {"actions", "entities", "fields", "values"} (see crm.core.auditlabels)."""


@hookspec
def service_record_states(session: Session, record_nos: list[str]) -> dict[str, dict] | None:
    """Live state of register entries a plugin keeps: number -> step, step_label, due_at, owner."""


@hookspec
def tickets_revisited(session: Session, revisits: list[Revisit]) -> None:
    """Closed tickets were revisited: record each customer's answers as a survey taken at the revisit time."""


@hookspec
def ticket_causes_recorded(session: Session, causes: dict[str, list[str]]) -> None:
    """Complaints reached their feedback step: register number -> why the customer complained (vocab.COMPLAINT_CAUSES codes)."""


@hookspec
def households_visited(session: Session, visits: list[VisitAnswers]) -> None:
    """Households were visited (走访): record each customer's satisfaction as a visit questionnaire taken on the visit."""


@hookspec(firstresult=True)
def ticket_statistics(
    session: Session, group_by: str, since: dt.datetime | None, until: dt.datetime | None
) -> list[dict] | None:
    """Ticket KPI inputs aggregated in SQL per project, team, category, month or cause (complaints only)."""


@hookspec
def service_signals(session: Session, since: dt.datetime) -> list[ServiceSignal] | None:
    """Households whose service history since a time warrants early warning (客情预警)."""


@hookspec
def collect_feedback(session: Session, limit: int, now: dt.datetime) -> list[Feedback] | None:
    """Hand pending feedback records to coordination at `now`, each once, in the caller's transaction."""


@hookspec(firstresult=True)
def get_feedback(session: Session, feedback_id: str) -> Feedback | None:
    """Look one feedback record up by id, whatever its state (for an assessment on demand)."""


@hookspec(firstresult=True)
def household_service_costs(
    session: Session, since: dt.datetime | None, until: dt.datetime | None
) -> list[dict] | None:
    """Per household, what serving it took: tickets by severity, repair cost, compensation, gifts, activities, loyalty fund."""


@hookspec(firstresult=True)
def assess_feedback(
    session: Session, feedback: list[Feedback], now: dt.datetime
) -> list[Assessment] | None:
    """Evaluate a batch of feedback records at `now`: each one's candidate plans and the best."""


@hookspec(firstresult=True)
def carry_out_plans(
    session: Session, instructions: list[Instruction], now: dt.datetime
) -> list[Dispatch] | None:
    """Carry out a batch of decided plans at `now`: give the tasks to staff, linked to each decision."""


@hookspec(firstresult=True)
def dispatch_outcomes(session: Session, references: list[str]) -> dict[str, WorkOutcome] | None:
    """Where dispatched work stands (status, and the customer's answer when done), for the decision log."""


@hookspec
def household_facts(session: Session, until: dt.datetime) -> dict[str, dict[int, float]] | None:
    """Per-household figures a plugin knows before a time, by name (complaints, satisfaction gap …), for analysis."""


@hookspec(firstresult=True)
def classified_tickets(
    session: Session, since: dt.datetime | None, until: dt.datetime | None
) -> list[dict] | None:
    """Tickets staff have classified: text, ticket type, category, severity, opened_at (classifier training)."""


@hookspec(firstresult=True)
def suggest_classification(session: Session, text: str, ticket_type: str) -> dict | None:
    """Suggest a ticket's category and severity from its text, with confidences, the model version and the model's names for its codes."""


@hookspec(firstresult=True)
def complaint_counts(
    session: Session, since: dt.datetime, until: dt.datetime, grain: str
) -> list[dict] | None:
    """Complaint tickets counted per project, building, category and period (grain: week or month), with their recorded causes."""


@hookspec(firstresult=True)
def household_segments(session: Session) -> dict[int, str] | None:
    """The latest segmentation: household id -> segment name (for campaign targeting)."""


@hookspec(firstresult=True)
def propensity_scores(session: Session, target: str) -> dict[int, float] | None:
    """The latest stored scores for a propensity target (buy_again, refer): household id -> probability."""


if TYPE_CHECKING:
    from crm.core.schedule import ScheduledJob


@hookspec
def scheduled_jobs(session: Session, now: dt.datetime) -> list[ScheduledJob] | None:
    """A plugin's periodic work for the scheduler: id, Chinese name, default schedule, permission and body (session, now)."""


@hookspec
def shell_identifiers(session: Session, limit: int) -> dict[str, list[str]] | None:
    """Numbers people type at the `crm shell` prompt, for its completion: label (e.g. 登记号) -> at most `limit`, newest first."""
