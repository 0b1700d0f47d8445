"""Service handling's tables: tickets through the eight steps, their events, commitments, SLA
policies, escalations, group complaints (群诉), teams, staff, work orders, and the active
retention services (member club, owner reward activities).

Tables refer to core tables (households, units, projects) by foreign key; the core never
refers back. Ticket numbers (登记号) are shared by the ticket's work orders (dispatch notices).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.models import Audited, Base, Household, TimestampMixin, UTCDateTime, utcnow


class Team(Audited, TimestampMixin, Base):
    """A handling team: security 安全, cleaning 保洁, technical 技术, customer service 客服,
    or an outsourced vendor 外包方."""

    __tablename__ = "svc_teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(
        String(30)
    )  # security/cleaning/technical/customer_service/vendor
    # Complaint categories and repair items this team takes by default (dispatch by category).
    handles: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    staff: Mapped[list[Staff]] = relationship(back_populates="team")


class Staff(Audited, TimestampMixin, Base):
    """A person who takes tickets and work orders; `level` is the escalation ladder
    (1 front line, 2 supervisor, 3 manager, 4 general manager)."""

    __tablename__ = "svc_staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("svc_teams.id"), index=True)
    title: Mapped[str] = mapped_column(String(40))  # e.g. 技术员、安全员、客服大使、主管、经理
    level: Mapped[int] = mapped_column(Integer, default=1)
    skills: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    team: Mapped[Team | None] = relationship(back_populates="staff")


class SlaPolicy(Audited, TimestampMixin, Base):
    """Targets per ticket type and severity: first response and resolution, in minutes."""

    __tablename__ = "svc_sla_policies"
    __table_args__ = (UniqueConstraint("ticket_type", "severity"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_type: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    response_minutes: Mapped[int] = mapped_column(Integer)
    resolve_minutes: Mapped[int] = mapped_column(Integer)
    # True: the clock only runs inside business hours (settings); False: around the clock.
    business_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    # Warn when this share of the allowed time has gone.
    warn_ratio: Mapped[float] = mapped_column(Float, default=0.8)


class GroupComplaint(Audited, TimestampMixin, Base):
    """群诉: several households of one building or project complaining of the same specific
    problem within a window, handled as one case by an emergency group whose leader (owner,
    the general manager by default) is the first person responsible (groups.py)."""

    __tablename__ = "svc_group_complaints"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), index=True)
    # The most frequent category of its tickets: shown, never used to find the group.
    category: Mapped[str | None] = mapped_column(String(30))
    phase: Mapped[str] = mapped_column(
        String(20), default="emerging"
    )  # latent/emerging/outbreak/disaster
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("svc_staff.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open/closed/merged
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    households: Mapped[int] = mapped_column(Integer, default=0)
    # The shared problem in a few words (the first complaint's wording, or the staff's).
    topic: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(Text)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("svc_group_complaints.id"))


class GroupMember(Audited, TimestampMixin, Base):
    """A person of a group complaint's emergency group (应急小组); the leader is the owner."""

    __tablename__ = "svc_group_members"
    __table_args__ = (UniqueConstraint("group_id", "staff_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("svc_group_complaints.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("svc_staff.id"))


class GroupStep(Audited, TimestampMixin, Base):
    """One step of a group complaint's handling plan, with its due time and who did it."""

    __tablename__ = "svc_group_steps"
    __table_args__ = (UniqueConstraint("group_id", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("svc_group_complaints.id"), index=True)
    step: Mapped[str] = mapped_column(String(30))
    position: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)


class GroupEvent(Base):
    """What happened to a group complaint: detected, tickets linked or unlinked, merged, split,
    phase moved, leader changed, steps done, closed. A ticket staff unlinked is never linked
    again by detection (its `unlink` event says so)."""

    __tablename__ = "svc_group_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("svc_group_complaints.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)


class Ticket(Audited, TimestampMixin, Base):
    """A complaint, repair, suggestion or enquiry under its register number (登记号)."""

    __tablename__ = "svc_tickets"
    __table_args__ = (
        Index("ix_svc_tickets_status_due", "status", "resolve_due_at"),
        # A person's open load (dispatch.least_loaded) is counted from this index alone.
        Index("ix_svc_tickets_owner_status", "owner_id", "status"),
        # Covers every column the KPI statistics read, so SQLite aggregates a million
        # tickets from this narrow index (by project without sorting) instead of the table.
        Index(
            "ix_svc_tickets_project_opened",
            "project_id",
            "opened_at",
            "team_id",
            "category",
            "status",
            "resolve_breached",
            "first_response_at",
            "closed_at",
            "revisited_at",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    ticket_type: Mapped[str] = mapped_column(String(20))  # complaint/repair/suggestion/enquiry
    channel: Mapped[str] = mapped_column(String(20))  # phone/visit/letter/fax/online
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # Copied from the unit or household at intake so KPIs group without joins.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), index=True)
    summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(30), index=True)
    severity: Mapped[str] = mapped_column(
        String(20), default="general"
    )  # general/important/hot/major
    category: Mapped[str | None] = mapped_column(
        String(30), index=True
    )  # engineering/design/sales_management/service
    expectations: Mapped[list] = mapped_column(JSON, default=list)  # the seven kinds (DOMAIN.md)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("svc_teams.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("svc_staff.id"))
    escalation_level: Mapped[int] = mapped_column(Integer, default=1)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("svc_group_complaints.id"), index=True)
    reported_by: Mapped[str | None] = mapped_column(String(100))  # who took the first report
    # Who the request comes from (rules.ORIGINS); only a customer's complaint counts as one.
    origin: Mapped[str] = mapped_column(String(30), default="customer")
    # When it happened (the call at 08:05); created_at is when it was typed in (08:40).
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    first_response_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revisited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    customer_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    # SLA clock: due times move out while the ticket waits for the customer.
    response_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolve_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paused_minutes: Mapped[float] = mapped_column(Float, default=0.0)
    warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When warn_ratio of the allowed resolution time has gone (business hours make it
    # non-linear), so the clock check finds tickets to warn with one indexed comparison.
    resolve_warn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolve_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    # Times a repeat call raised the severity: each climbs one escalation level.
    severity_raises: Mapped[int] = mapped_column(Integer, default=0)
    root_cause: Mapped[str | None] = mapped_column(Text)
    corrective_action: Mapped[str | None] = mapped_column(Text)
    # What was done, as the customer confirmed it at closing: the register's 处理结果.
    result: Mapped[str | None] = mapped_column(Text)
    # Repairs: warranty and fee, stated before the work and signed by the customer.
    repair_item: Mapped[str | None] = mapped_column(String(50))
    in_warranty: Mapped[bool | None] = mapped_column(Boolean)
    paid: Mapped[bool | None] = mapped_column(Boolean)
    fee_rate: Mapped[str | None] = mapped_column(String(200))
    fee_amount: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    fee_signed_off: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the rate was told to the customer: it must precede the repair work order.
    fee_stated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    fee_signed_by: Mapped[str | None] = mapped_column(String(100))
    fee_signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    warranty_until: Mapped[dt.date | None] = mapped_column(Date)
    # A repeat failure after a repair is a free rework of the earlier ticket (返修).
    rework_of_id: Mapped[int | None] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    # The first arrival on site of any of its work orders (到场), for the time to arrive.
    arrived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Optimistic lock: two agents claiming at once, exactly one wins.
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__: ClassVar[dict] = {"version_id_col": version}

    household: Mapped[Household] = relationship()
    team: Mapped[Team | None] = relationship()
    owner: Mapped[Staff | None] = relationship()
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id"
    )
    commitments: Mapped[list[Commitment]] = relationship(
        back_populates="ticket", order_by="Commitment.id"
    )


class TicketEvent(Base):
    """One step or action on a ticket: who, when, from which status to which, and the note.
    `at` is when it happened, `entered_at` when it was recorded (staff type a call in late)."""

    __tablename__ = "svc_ticket_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    entered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str | None] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    # Structured facts of the step, e.g. at assessment the model's suggestion and whether the
    # staff followed it, so the acceptance of suggestions can be measured.
    details: Mapped[dict | None] = mapped_column(JSON)
    ticket: Mapped[Ticket] = relationship(back_populates="events")


class Commitment(Audited, TimestampMixin, Base):
    """A promise made in the reply: what, by when, by whom ("I will …"). A broken promise
    needs apology, reason and remedy before a new commitment may be set."""

    __tablename__ = "svc_commitments"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    what: Mapped[str] = mapped_column(Text)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    promised_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open/kept/broken
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    apology: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    remedy: Mapped[str | None] = mapped_column(Text)
    ticket: Mapped[Ticket] = relationship(back_populates="commitments")


class Escalation(Base):
    """An escalation that fired; unique per ticket, rule and level so no rule fires twice."""

    __tablename__ = "svc_escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "rule", "level"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    rule: Mapped[str] = mapped_column(String(30))  # major/breach/reopen/group
    level: Mapped[int] = mapped_column(Integer)
    to_staff_id: Mapped[int | None] = mapped_column(ForeignKey("svc_staff.id"))
    fired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


class WorkOrder(Audited, TimestampMixin, Base):
    """Work given to a team or person with its due time. Under a ticket it is a dispatch
    notice with the ticket's register number (登记号-序号): a remedial or corrective action, a
    repair job or the revisit. Without a ticket it is a task (任务, RW…) that coordination or a
    programme gives to staff: a follow-up call or visit, a gift, compensation, a manager's
    supervision or a project's improvement, linked to the feedback and decision behind it;
    when done it records the customer's answer, which flows back to the decision log."""

    __tablename__ = "svc_work_orders"
    __table_args__ = (
        Index("ix_svc_work_orders_team_status", "team_id", "status"),
        # A person's open load (dispatch.least_loaded) is counted from this index alone.
        Index("ix_svc_work_orders_assignee_status", "assignee_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(50), unique=True)  # 登记号-序号, or RW… for a task
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    # Whose work it is: the ticket's household, or the household or project of a task.
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    # rules.ORIGINS: the ticket's origin, or who made the task (coordination …).
    origin: Mapped[str] = mapped_column(String(30), default="customer")
    # The feedback record and the coordination decision a task carries out.
    feedback_ref: Mapped[str | None] = mapped_column(String(40), index=True)
    decision_ref: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # rules.WORK_ORDER_KINDS or rules.TASK_KINDS
    description: Mapped[str] = mapped_column(Text)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("svc_teams.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("svc_staff.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open/done/returned/cancelled
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When the completion was typed in (completed_at is when the work was done).
    completion_entered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    returned_reason: Mapped[str | None] = mapped_column(Text)
    returned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The work order this one continues (a job returned to the supervisor), so nothing is lost.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("svc_work_orders.id"), index=True)
    result: Mapped[str | None] = mapped_column(Text)
    # A task's outcome: what the customer answered, and whether they accepted it.
    answer: Mapped[str | None] = mapped_column(Text)
    accepted: Mapped[bool | None] = mapped_column(Boolean)
    # What the job cost the company (labour and parts, compensation paid, a gift's value),
    # read by profitability assessment as the cost of serving the household.
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    cost_kind: Mapped[str | None] = mapped_column(String(20))  # repair/compensation/gift
    # The skill the job needs (木工): it goes to someone who has it before load balancing.
    skill: Mapped[str | None] = mapped_column(String(40))
    # When the worker reached the site (到场): the KPIs' time to arrive.
    arrived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ticket: Mapped[Ticket | None] = relationship()
    household: Mapped[Household | None] = relationship()
    team: Mapped[Team | None] = relationship()
    assignee: Mapped[Staff | None] = relationship()


class ProjectManager(Audited, TimestampMixin, Base):
    """The manager responsible for a project (项目负责人): improvement tasks and supervision
    for the project go to this person."""

    __tablename__ = "svc_project_managers"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("svc_staff.id"), index=True)


class ClubEnrollment(Base):
    """Member-club history: each enrolment or tier change (the current tier is on the
    household). Never deleted."""

    __tablename__ = "svc_club_enrollments"
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    tier: Mapped[str] = mapped_column(String(20))
    previous_tier: Mapped[str | None] = mapped_column(String(20))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)


class RewardActivity(Audited, TimestampMixin, Base):
    """An owner reward activity (业主回馈活动): sign-ups and attendance per household."""

    __tablename__ = "svc_reward_activities"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    held_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))


class ActivitySignup(Audited, TimestampMixin, Base):
    __tablename__ = "svc_activity_signups"
    __table_args__ = (UniqueConstraint("activity_id", "household_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("svc_reward_activities.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    signed_up_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attended: Mapped[bool | None] = mapped_column(Boolean)


class TicketCause(Base):
    """Why the customer complained (vocab.COMPLAINT_CAUSES), recorded at the feedback step;
    a complaint may have several causes, one row each."""

    __tablename__ = "svc_ticket_causes"
    __table_args__ = (UniqueConstraint("ticket_id", "cause"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    cause: Mapped[str] = mapped_column(String(30), index=True)


class TicketOption(Base):
    """An option offered to the customer (step 4 of the complaint method: several workable
    options, offered one after another); `chosen` marks the one the customer took."""

    __tablename__ = "svc_ticket_options"
    __table_args__ = (UniqueConstraint("ticket_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("svc_tickets.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    offered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    offered_by: Mapped[str] = mapped_column(String(100))
    chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    chosen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ImprovementPlan(Audited, TimestampMixin, Base):
    """持续改进: an improvement plan drawn from the periodic statistics, with its basis (the
    period and what was counted), an owner and a due time; done with its outcome."""

    __tablename__ = "svc_improvement_plans"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)  # GJ20260430-01
    what: Mapped[str] = mapped_column(Text)
    # What the statistics showed: period, team, category, cause and the complaints counted.
    since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("svc_teams.id"))
    category: Mapped[str | None] = mapped_column(String(30))
    cause: Mapped[str | None] = mapped_column(String(30))
    basis_count: Mapped[int | None] = mapped_column(Integer)
    basis: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int] = mapped_column(ForeignKey("svc_staff.id"), index=True)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)  # open/done
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    owner: Mapped[Staff] = relationship()
    team: Mapped[Team | None] = relationship()


class LoyaltyFundEntry(Audited, TimestampMixin, Base):
    """One line of a project's 一路同行 loyalty fund (忠诚度维修基金) ledger: money in (the
    yearly allocation from profit, a household's contribution) or out (an owner activity, a
    gift, other care for owners). Amounts are positive; the kind says which way they go.
    Never changed or deleted: a correction is a new line."""

    __tablename__ = "svc_loyalty_fund_entries"
    __table_args__ = (Index("ix_svc_loyalty_fund_entries_project_year", "project_id", "year"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    # The household that contributed or was given to; none for an allocation or a project's
    # spending (shared among the project's households as cost to serve).
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # fund.KINDS
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    year: Mapped[int] = mapped_column(Integer)  # the fund year (business calendar)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Spending that paid for an activity or a work order (a gift) is costed there already.
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("svc_reward_activities.id"))
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("svc_work_orders.id"))
    note: Mapped[str | None] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(100))
