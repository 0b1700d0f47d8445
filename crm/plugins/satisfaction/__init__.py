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
def tickets_revisited(session, revisits):
    from crm.plugins.satisfaction.surveys import record_revisits

    record_revisits(session, revisits)


@hookimpl
def household_facts(session, until):
    from crm.plugins.satisfaction.surveys import satisfaction_gap_per_household

    return {"satisfaction_gap": satisfaction_gap_per_household(session, until)}


@hookimpl(trylast=True)  # after service handling's demo, so its summary counts the revisits
def build_demo_data(session, seed, now):
    from crm.plugins.satisfaction.demo import build_demo_data

    return build_demo_data(session, seed, now)


@hookimpl
def collect_feedback(session, limit):
    from crm.plugins.satisfaction.warnings import hand_feedback

    return hand_feedback(session, limit)


@hookimpl
def get_feedback(session, feedback_id):
    from sqlalchemy import func, select

    from crm.core.chain import Feedback
    from crm.core.models import Household, Project
    from crm.plugins.satisfaction.models import FeedbackRecord

    if not str(feedback_id).isdigit():
        return None
    found = session.execute(
        select(FeedbackRecord, Household.code, Project.name)
        .outerjoin(Household, Household.id == FeedbackRecord.household_id)
        # A household's record belongs to the household's project.
        .outerjoin(
            Project, Project.id == func.coalesce(FeedbackRecord.project_id, Household.project_id)
        )
        .where(FeedbackRecord.id == int(feedback_id))
    ).first()
    if found is None:
        return None
    record, code, project = found
    return Feedback(
        id=str(record.id),
        household_code=code,
        reason=record.reason,
        strength=record.strength,
        source=f"satisfaction.{record.kind}",
        project=project,
    )


@hookimpl
def scheduled_jobs(session, now):
    from crm.plugins.satisfaction.jobs import scheduled_jobs

    return scheduled_jobs(session, now)
