"""Coordination's table: one decision per feedback record, from collection to the outcome of
the work it caused (the decision log).

The feedback is copied in as plain values (other plugins own the records), and so are the
plans considered, the plan chosen and the references of the work service handling opened.
The unique feedback id is what makes each feedback count once: a second collection of the same
record cannot insert a second decision.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.core.models import Base, UTCDateTime


class Decision(Base):
    """Feedback → options considered → chosen plan → dispatched work → outcome.

    status: collected → assessed → dispatched → closed; no_plan when the assessment offered
    none, undispatched when service handling could not carry the plan out.
    """

    __tablename__ = "coord_decisions"
    # The cycle claims work by status in id order.
    __table_args__ = (Index("ix_coord_decisions_status_id", "status", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(60))
    # Whom the feedback is about: the ids the chain works with, the code and name to show.
    household_id: Mapped[int | None] = mapped_column(Integer, index=True)
    project_id: Mapped[int | None] = mapped_column(Integer)
    household_code: Mapped[str | None] = mapped_column(String(40), index=True)
    project: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    strength: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20))
    options: Mapped[list | None] = mapped_column(JSON)
    plan: Mapped[str | None] = mapped_column(String(100), index=True)
    chosen: Mapped[dict | None] = mapped_column(JSON)
    work_refs: Mapped[list | None] = mapped_column(JSON)
    team: Mapped[str | None] = mapped_column(String(40))
    # Reference -> its outcome (status, the customer's answer …) as last reported, and when
    # that changed; once all the work is done, what the customer answered and accepted.
    outcome: Mapped[dict | None] = mapped_column(JSON)
    answer: Mapped[str | None] = mapped_column(Text)
    accepted: Mapped[bool | None] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text)
    collected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    assessed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
