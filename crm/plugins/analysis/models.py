"""Data analysis's tables: the saved models, the segmentation runs and the propensity scores.

Every trained model is kept with its version, training date, settings and measured metrics,
and nothing is retrained behind anyone's back: scoring and suggestions always name the saved
version they used. Segment runs keep their date and every household's segment, so segments
can be compared over time.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm.core.models import Base, UTCDateTime, utcnow


class SavedModel(Base):
    """One trained model: kind (segments, buy_again, refer, complaint) and its version."""

    __tablename__ = "ana_models"
    __table_args__ = (UniqueConstraint("kind", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), index=True)
    version: Mapped[int] = mapped_column(Integer)
    trained_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    trained_by: Mapped[str] = mapped_column(String(100))
    # The history the model saw: up to `cutoff`, labels over `horizon_months` after it.
    cutoff: Mapped[dt.date | None] = mapped_column(Date)
    horizon_months: Mapped[int | None] = mapped_column(Integer)
    features: Mapped[list] = mapped_column(JSON, default=list)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    # The fitted scikit-learn estimator, pickled. Only this application writes it, and only
    # from data in this database, so loading it back trusts nothing from outside.
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class SegmentRun(Base):
    """One segmentation of the portfolio: when, as of which date, how many segments and why."""

    __tablename__ = "ana_segment_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    run_by: Mapped[str] = mapped_column(String(100))
    as_of: Mapped[dt.date] = mapped_column(Date)
    model_id: Mapped[int] = mapped_column(ForeignKey("ana_models.id"))
    k: Mapped[int] = mapped_column(Integer)
    chosen_by: Mapped[str] = mapped_column(String(20))  # silhouette / given
    silhouette: Mapped[float | None] = mapped_column(Float)
    # Silhouette of every k tried ({"2": 0.41, …}) so the choice can be checked.
    tried: Mapped[dict] = mapped_column(JSON, default=dict)
    households: Mapped[int] = mapped_column(Integer)


class Segment(Base):
    """One segment of a run: its name, its description in words, size and feature means."""

    __tablename__ = "ana_segments"
    __table_args__ = (UniqueConstraint("run_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ana_segment_runs.id"), index=True)
    label: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    means: Mapped[dict] = mapped_column(JSON, default=dict)


class HouseholdSegment(Base):
    """Which segment of a run a household fell in."""

    __tablename__ = "ana_household_segments"
    run_id: Mapped[int] = mapped_column(ForeignKey("ana_segment_runs.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("households.id"), primary_key=True, index=True
    )
    label: Mapped[int] = mapped_column(Integer)


class PropensityScore(Base):
    """A household's probability under one saved propensity model, scored as of a date."""

    __tablename__ = "ana_propensity_scores"
    model_id: Mapped[int] = mapped_column(ForeignKey("ana_models.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("households.id"), primary_key=True, index=True
    )
    as_of: Mapped[dt.date] = mapped_column(Date)
    score: Mapped[float] = mapped_column(Float)
    decile: Mapped[int] = mapped_column(Integer)  # 1 = the tenth most likely
