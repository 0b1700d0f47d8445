"""Satisfaction monitoring's tables: surveys with CSAT, NPS and expectation/experience pairs
per aspect (satisfaction = experience − expectation), and the early-warning feedback records
handed to coordination.

Service tickets belong to another plugin, so a survey names its ticket by register number and
carries the ticket's project, team and category as plain values for the KPI grouping.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.models import Audited, Base, UTCDateTime, utcnow


class Survey(Audited, Base):
    """One answered survey: after a ticket (revisit), periodic, or a visit questionnaire."""

    __tablename__ = "sat_surveys"
    __table_args__ = (Index("ix_sat_surveys_project_taken", "project_id", "taken_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # revisit/periodic/visit
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    ticket_number: Mapped[str | None] = mapped_column(String(40), index=True)
    # Where a survey not about a ticket came from (a visit: camp_visit:<id>), so the visit's
    # correction replaces its answers instead of adding a second survey.
    reference: Mapped[str | None] = mapped_column(String(60), index=True)
    team: Mapped[str | None] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(30))
    channel: Mapped[str | None] = mapped_column(String(20))
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # When the answers were typed in (taken_at is when the customer gave them).
    entered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    csat: Mapped[int | None] = mapped_column(Integer)  # 1-5
    nps: Mapped[int | None] = mapped_column(Integer)  # 0-10 would-recommend
    comment: Mapped[str | None] = mapped_column(Text)
    taken_by: Mapped[str | None] = mapped_column(String(100))
    # Sum of the aspects' gaps and their number, kept with the survey so the KPI mean gap is
    # one pass over surveys instead of a join with every aspect.
    gap_total: Mapped[int | None] = mapped_column(Integer)
    aspect_count: Mapped[int] = mapped_column(Integer, default=0)
    aspects: Mapped[list[SurveyAspect]] = relationship(back_populates="survey")


class SurveyAspect(Base):
    """Expectation and experience for one aspect (1-10 each); gap = experience − expectation."""

    __tablename__ = "sat_survey_aspects"
    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("sat_surveys.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    aspect: Mapped[str] = mapped_column(String(40))
    expectation: Mapped[int] = mapped_column(Integer)
    experience: Mapped[int] = mapped_column(Integer)
    gap: Mapped[int] = mapped_column(Integer)
    survey: Mapped[Survey] = relationship(back_populates="aspects")


class FeedbackRecord(Audited, Base):
    """客情预警: a household or project that needs a decision, with reason and strength.

    `key` makes one warning per cause: detecting again does not duplicate it. Coordination
    takes pending records through the collect_feedback hook.
    """

    __tablename__ = "sat_feedback"
    # Coordination takes the strongest pending records first: read in index order, no sort.
    __table_args__ = (Index("ix_sat_feedback_status_strength", "status", "strength", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(
        String(30)
    )  # satisfaction_drop/repeat_complaint/broken_promise/project_drop
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    strength: Mapped[float] = mapped_column(Float)  # 0..1
    status: Mapped[str] = mapped_column(String(20), default="pending")
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    handed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class TicketCause(Base):
    """Why the customer of a ticket complained (vocab.COMPLAINT_CAUSES), as service handling
    reported it at the ticket's feedback step (ticket_causes_recorded hook): the KPIs join
    the ticket's surveys to it by register number to group satisfaction by cause."""

    __tablename__ = "sat_ticket_causes"
    __table_args__ = (UniqueConstraint("ticket_number", "cause"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[str] = mapped_column(String(40), index=True)
    cause: Mapped[str] = mapped_column(String(30))
