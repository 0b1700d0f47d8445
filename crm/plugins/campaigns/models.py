"""The four-year revisit programme's tables (四年之约): visits and the rectification of each
nonconformity found on a visit.

Visit records and opinion forms are kept permanently (DOMAIN.md "Customer visits"), so nothing
here is ever deleted: a correction is a new visit naming the one it corrects, and a follow-up
visit names the visit it follows up.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.models import Audited, Base, TimestampMixin


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
        back_populates="visit", order_by="Rectification.id"
    )


class Rectification(Audited, TimestampMixin, Base):
    """A nonconformity found on a visit, its named owner, due date and what was done."""

    __tablename__ = "camp_rectifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("camp_visits.id"), index=True)
    issue: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(100))
    due_on: Mapped[dt.date] = mapped_column(Date)
    measures: Mapped[str | None] = mapped_column(Text)
    done_on: Mapped[dt.date | None] = mapped_column(Date)

    visit: Mapped[Visit] = relationship(back_populates="rectifications")
