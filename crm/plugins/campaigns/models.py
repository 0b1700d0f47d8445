"""The campaigns plugin's tables: the four-year revisit programme (四年之约: visits and the
rectification of each nonconformity found on a visit), marketing campaigns with their runs,
outreach lists and contact attempts, and the 6+2 lifecycle touchpoints.

Visit records and opinion forms are kept permanently (DOMAIN.md "Customer visits"), so nothing
here is ever deleted: a correction is a new visit naming the one it corrects, and a follow-up
visit names the visit it follows up.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.models import Audited, Base, TimestampMixin, UTCDateTime, utcnow


class Visit(Audited, TimestampMixin, Base):
    """One visit to a household for the revisit due in `due_month` (YYYY-MM)."""

    __tablename__ = "camp_visits"
    __table_args__ = (
        # The due list asks "is a visit recorded for this unit in this month" per row.
        Index("ix_camp_visits_purchase_month", "purchase_id", "due_month"),
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    due_month: Mapped[str] = mapped_column(String(7))
    anniversary: Mapped[int] = mapped_column(Integer)
    visited_on: Mapped[dt.date] = mapped_column(Date)
    visitor: Mapped[str] = mapped_column(String(100))
    opinions: Mapped[str | None] = mapped_column(Text)
    out_of_scope: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    follows_visit_id: Mapped[int | None] = mapped_column(ForeignKey("camp_visits.id"), index=True)
    corrects_visit_id: Mapped[int | None] = mapped_column(ForeignKey("camp_visits.id"), index=True)
    recorded_by: Mapped[str] = mapped_column(String(100))

    rectifications: Mapped[list[Rectification]] = relationship(
        back_populates="visit",
        order_by="Rectification.id",
        foreign_keys="Rectification.visit_id",
    )
    opinion_items: Mapped[list[VisitOpinion]] = relationship(order_by="VisitOpinion.id")


class VisitAppointment(Audited, TimestampMixin, Base):
    """Step 3.1 of the visit procedure: the time agreed for a four-yearly visit and with whom
    (the customer's principal or property contact), before anyone goes; the visit recorded
    for the same unit and month is linked to it."""

    __tablename__ = "camp_visit_appointments"
    __table_args__ = (
        Index("ix_camp_visit_appointments_purchase_month", "purchase_id", "due_month"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    due_month: Mapped[str] = mapped_column(String(7))
    appointed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    contact: Mapped[str] = mapped_column(String(100))
    agreed_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("camp_visits.id"))


class VisitOpinion(Audited, Base):
    """One opinion heard on a visit (《客户意见、建议征求表》), by kind: opinion, suggestion,
    praise, or out of the management's scope (explained to the customer)."""

    __tablename__ = "camp_visit_opinions"
    __table_args__ = (
        CheckConstraint("kind IN ('opinion', 'suggestion', 'praise', 'out_of_scope')", name="kind"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("camp_visits.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)


class Rectification(Audited, TimestampMixin, Base):
    """A nonconformity found on a visit, its named owner, due date and what was done; open
    until it is rectified and the customer confirmed it on a follow-up visit. A customer still
    not satisfied sends it back (rejected_on) to be rectified again."""

    __tablename__ = "camp_rectifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("camp_visits.id"), index=True)
    issue: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(100))
    due_on: Mapped[dt.date] = mapped_column(Date)
    measures: Mapped[str | None] = mapped_column(Text)
    done_on: Mapped[dt.date | None] = mapped_column(Date)
    # How many times it was rectified (a rejected rectification is done again).
    rounds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The follow-up visit on which the customer was still not satisfied with the rectification.
    rejected_on: Mapped[dt.date | None] = mapped_column(Date)
    # The follow-up visit on which the customer confirmed it: only then is it closed.
    confirmed_on: Mapped[dt.date | None] = mapped_column(Date)
    confirmed_visit_id: Mapped[int | None] = mapped_column(ForeignKey("camp_visits.id"))

    visit: Mapped[Visit] = relationship(back_populates="rectifications", foreign_keys=[visit_id])


class Campaign(Audited, TimestampMixin, Base):
    """A referral (老带新) or loyalty (一路同行) campaign: whom it targets, when it runs, how it
    reaches them, what it says, and how long after a contact a sale still counts for it."""

    __tablename__ = "camp_campaigns"
    __table_args__ = (
        CheckConstraint("kind IN ('referral', 'loyalty')", name="kind"),
        CheckConstraint(
            "schedule_kind IS NULL OR schedule_kind IN ('once', 'cron', 'interval')",
            name="schedule_kind",
        ),
        CheckConstraint("attribution_days > 0", name="attribution_days"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    # Normalised target rule: segments, propensity {target, min}, projects, stages.
    target: Mapped[dict] = mapped_column(JSON, default=dict)
    channel: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(Text)
    attribution_days: Mapped[int] = mapped_column(Integer, default=90)
    # No schedule: the campaign runs only when someone types `crm campaign run`.
    schedule_kind: Mapped[str | None] = mapped_column(String(10))
    run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cron: Mapped[str | None] = mapped_column(String(100))
    interval_minutes: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100))

    runs: Mapped[list[CampaignRun]] = relationship(
        back_populates="campaign", order_by="CampaignRun.id"
    )


class CampaignRun(Base):
    """One run of a campaign: its outreach list is written in committed batches and the run
    is finished only when the whole list is written; an unfinished run is resumed."""

    __tablename__ = "camp_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("camp_campaigns.id"), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_by: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(20))  # manual / scheduler
    resumed: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    audience: Mapped[int | None] = mapped_column(Integer)
    # The campaign's id while the run is unfinished, NULL once finished: unique, so two
    # processes starting the same campaign at once cannot both open a run (NULLs never clash).
    open_for_campaign: Mapped[int | None] = mapped_column(Integer, unique=True)

    campaign: Mapped[Campaign] = relationship(back_populates="runs")


class CampaignContact(Base):
    """A household on a run's outreach list, with the message rendered for it. The unique key
    is what makes a crashed and restarted run never list a household twice."""

    __tablename__ = "camp_contacts"
    __table_args__ = (UniqueConstraint("run_id", "household_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("camp_runs.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    listed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The business-zone date of listed_at, so attribution can compare it with purchase dates
    # in SQL on both backends.
    listed_on: Mapped[dt.date] = mapped_column(Date)
    message: Mapped[str] = mapped_column(Text)
    segment: Mapped[str | None] = mapped_column(String(100))
    score: Mapped[float | None] = mapped_column(Double)
    # Who calls this household (crm campaign assign): a user name, on PostgreSQL a login. A
    # caller who sees personal data masked sees the phone of their own contacts in full.
    caller: Mapped[str | None] = mapped_column(String(100), index=True)

    attempts: Mapped[list[ContactAttempt]] = relationship(
        back_populates="contact", order_by="ContactAttempt.at"
    )


class ContactAttempt(Audited, TimestampMixin, Base):
    """One attempt to reach a listed household and what the household answered."""

    __tablename__ = "camp_contact_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("camp_contacts.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)

    contact: Mapped[CampaignContact] = relationship(back_populates="attempts")


class Touchpoint(Audited, TimestampMixin, Base):
    """A 6+2 lifecycle touchpoint due for a household on a day; one per household, kind and
    day, so planning again never adds it twice."""

    __tablename__ = "camp_touchpoints"
    __table_args__ = (
        UniqueConstraint("household_id", "kind", "due_on"),
        Index("ix_camp_touchpoints_due_on_done", "due_on", "done_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    kind: Mapped[str] = mapped_column(String(20))
    due_on: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(20))
    script: Mapped[str] = mapped_column(Text)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
