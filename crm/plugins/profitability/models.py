"""Profitability assessment's tables: the purchase-model fits, the scoring runs and the
per-household values of the latest run.

A run keeps its date, the fits and the settings it used, so a figure can be traced back; only
the latest run's household values are kept (a portfolio of a million households would
otherwise grow by a million rows per run).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm.core.models import Base, UTCDateTime, utcnow


class ModelFit(Base):
    """One maximum-likelihood fit of a purchase model (mbgnbd, bgnbd or gammagamma)."""

    __tablename__ = "prof_model_fits"
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(20), index=True)  # mbgnbd/bgnbd/gammagamma
    parameters: Mapped[dict] = mapped_column(JSON)
    calibration_end: Mapped[dt.date] = mapped_column(Date)
    unit: Mapped[str] = mapped_column(String(10))  # days/weeks/months
    since: Mapped[dt.date | None] = mapped_column(Date)
    log_likelihood: Mapped[float] = mapped_column(Float)
    customers: Mapped[int] = mapped_column(Integer)
    fitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    fitted_by: Mapped[str] = mapped_column(String(100))
    # Whether the optimiser converged and which parameters stopped at a bound, in one sentence
    # (home buyers show little drop-out, so a and b often run to their cap).
    status: Mapped[str | None] = mapped_column(String(300))


class ScoringRun(Base):
    """One lifetime-value scoring of the whole portfolio."""

    __tablename__ = "prof_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    # The purchase-count fit it used, of whichever model (MBG/NBD or BG/NBD) the settings chose.
    bgnbd_fit_id: Mapped[int | None] = mapped_column(ForeignKey("prof_model_fits.id"))
    gammagamma_fit_id: Mapped[int | None] = mapped_column(ForeignKey("prof_model_fits.id"))
    settings: Mapped[dict] = mapped_column(JSON)
    households: Mapped[int] = mapped_column(Integer)
    total_clv: Mapped[float] = mapped_column(Float)
    # False when no plugin answered household_service_costs: ticket costs were taken as zero.
    service_costs_known: Mapped[bool] = mapped_column(Boolean)
    run_by: Mapped[str] = mapped_column(String(100))


class HouseholdValue(Base):
    """A household's lifetime value and its parts (present values in yuan) in one run, with
    the grouping keys as they were on the run date."""

    __tablename__ = "prof_household_values"
    __table_args__ = (UniqueConstraint("household_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("prof_runs.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    segment: Mapped[str] = mapped_column(String(20))
    stage: Mapped[str] = mapped_column(String(20))
    p_alive: Mapped[float | None] = mapped_column(Float)
    expected_purchases: Mapped[float] = mapped_column(Float)
    purchase_margin: Mapped[float] = mapped_column(Float)
    property_revenue: Mapped[float] = mapped_column(Float)
    service_revenue: Mapped[float] = mapped_column(Float)
    referral_value: Mapped[float] = mapped_column(Float)
    after_sales_cost: Mapped[float] = mapped_column(Float)
    other_cost: Mapped[float] = mapped_column(Float)
    clv: Mapped[float] = mapped_column(Float, index=True)
    # Realized relationship profit per year over the cost window (NULL: scored before prof0003).
    realized_profit: Mapped[float | None] = mapped_column(Float)
