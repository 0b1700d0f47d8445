"""The core customer database: projects, units, households, members, purchases, referrals,
service records, the audit log, settings and the scheduler's job store.

Personal data columns (`*_enc`) hold ciphertext from `crm.core.security.Vault`; the `*_hash`
columns hold keyed hashes for exact look-up; the `*_masked` columns the masked form every role
may see. On PostgreSQL only the schema's owner may read `*_enc` and `*_hash` (migration 0006):
the others get full values through `crm.core.privacy`, which the database audits. Code columns store vocabulary codes
(`crm.core.vocab`), never display labels.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Audited:
    """Marker: the ORM flush hook writes an audit entry for every change to these rows."""

    # Columns whose values never go into the audit log, only the fact they changed.
    __sensitive__: tuple[str, ...] = ()


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Project(Audited, TimestampMixin, Base):
    """A residential development (小区/楼盘)."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    city: Mapped[str | None] = mapped_column(String(50))
    buildings: Mapped[list[Building]] = relationship(back_populates="project")


class Building(Audited, TimestampMixin, Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    project: Mapped[Project] = relationship(back_populates="buildings")
    units: Mapped[list[Unit]] = relationship(back_populates="building")


class Unit(Audited, TimestampMixin, Base):
    """A flat, written like 12-1A, 2A-1B or 1903 inside its building."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("building_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"), index=True)
    code: Mapped[str] = mapped_column(String(30), index=True)
    floor_area: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    building: Mapped[Building] = relationship(back_populates="units")


class Household(Audited, TimestampMixin, Base):
    """A customer household (客户家庭), prospective (准客户) or existing (业主)."""

    __tablename__ = "households"
    __table_args__ = (CheckConstraint("status IN ('prospective', 'existing')", name="status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20), default="prospective")
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    age: Mapped[int | None] = mapped_column(Integer)
    income_band: Mapped[str | None] = mapped_column(String(20))
    housing: Mapped[str | None] = mapped_column(String(20))
    education: Mapped[str | None] = mapped_column(String(30))
    occupation: Mapped[str | None] = mapped_column(String(100))
    club_activities: Mapped[str | None] = mapped_column(String(200))
    member_tier: Mapped[str] = mapped_column(String(20), default="none")
    consent_contact: Mapped[bool] = mapped_column(Boolean, default=True)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)

    project: Mapped[Project | None] = relationship()
    members: Mapped[list[Member]] = relationship(back_populates="household")
    purchases: Mapped[list[Purchase]] = relationship(
        back_populates="household", foreign_keys="Purchase.household_id"
    )


class Member(Audited, TimestampMixin, Base):
    """A person in a household; phones and the national ID number are encrypted."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("household_id", "name"),
        CheckConstraint("role IN ('owner', 'co_owner', 'family', 'tenant')", name="role"),
    )
    __sensitive__ = (
        "phone_enc",
        "phone_hash",
        "phone_tail",
        "alt_phone_enc",
        "alt_phone_hash",
        "alt_phone_tail",
        "id_number_enc",
        "id_number_hash",
    )
    # The columns only the owner may read on PostgreSQL; deferred, so loading a Member never
    # asks for them (see crm.core.privacy for how full values are read).
    SEALED = (
        "phone_enc",
        "phone_hash",
        "alt_phone_enc",
        "alt_phone_hash",
        "id_number_enc",
        "id_number_hash",
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20), default="owner")
    phone_enc: Mapped[str | None] = mapped_column(String(120), deferred=True)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True, deferred=True)
    # The last four digits are shown in the masked form anyway; kept for "尾号" search.
    phone_tail: Mapped[str | None] = mapped_column(String(4), index=True)
    alt_phone_enc: Mapped[str | None] = mapped_column(String(120), deferred=True)
    # A search by phone finds the alternative phone too; an import compares hashes.
    alt_phone_hash: Mapped[str | None] = mapped_column(String(64), index=True, deferred=True)
    # "尾号" search finds the alternative phone too (migration 0007).
    alt_phone_tail: Mapped[str | None] = mapped_column(String(4), index=True)
    id_number_enc: Mapped[str | None] = mapped_column(String(120), deferred=True)
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True, deferred=True)
    phone_masked: Mapped[str | None] = mapped_column(String(20))
    alt_phone_masked: Mapped[str | None] = mapped_column(String(20))
    id_number_masked: Mapped[str | None] = mapped_column(String(30))

    household: Mapped[Household] = relationship(back_populates="members")


class Purchase(Audited, TimestampMixin, Base):
    """One signed sale of a unit to a household (成交)."""

    __tablename__ = "purchases"
    id: Mapped[int] = mapped_column(primary_key=True)
    contract_no: Mapped[str] = mapped_column(String(50), unique=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    purchase_date: Mapped[dt.date] = mapped_column(Date, index=True)
    floor_area: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    channel: Mapped[str | None] = mapped_column(String(20))
    referrer_household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id"), index=True
    )
    promotions_attended: Mapped[int] = mapped_column(Integer, default=0)
    handover_date: Mapped[dt.date | None] = mapped_column(Date, index=True)

    household: Mapped[Household] = relationship(
        back_populates="purchases", foreign_keys=[household_id]
    )
    unit: Mapped[Unit | None] = relationship()
    referrer: Mapped[Household | None] = relationship(foreign_keys=[referrer_household_id])


class Referral(Audited, TimestampMixin, Base):
    """An existing household bringing a new buyer (老带新)."""

    __tablename__ = "referrals"
    __table_args__ = (UniqueConstraint("referrer_household_id", "referred_household_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    referrer_household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    referred_household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    referred_on: Mapped[dt.date | None] = mapped_column(Date)

    referrer: Mapped[Household] = relationship(foreign_keys=[referrer_household_id])
    referred: Mapped[Household] = relationship(foreign_keys=[referred_household_id])


class ServiceRecord(Audited, TimestampMixin, Base):
    """The service register (登记簿) of the card: complaints, suggestions, enquiries, title
    certificates, move-in, property services, repairs and visits, each under its register
    number (登记号) with the customer, the nature (summary) and the result.

    Imported legacy records are kept here as they are. A plugin that handles requests itself
    (service handling's tickets) keeps one entry per request here, named by `managed_by`, so
    every view of a household's service reads one register and counts each request once;
    an import never changes such an entry."""

    __tablename__ = "service_records"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('complaint', 'suggestion', 'enquiry', 'title_certificate', 'move_in', "
            "'property_service', 'repair', 'visit')",
            name="kind",
        ),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    record_no: Mapped[str] = mapped_column(String(50), unique=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30), index=True)
    channel: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default="open")
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    # The plugin that keeps this entry in step with its own record (None: imported or typed).
    managed_by: Mapped[str | None] = mapped_column(String(30), index=True)

    household: Mapped[Household] = relationship()
    unit: Mapped[Unit | None] = relationship()


class AuditEntry(Base):
    """Who did what, when, with old -> new values. Never updated or deleted.

    `chain_seq` is the row's place in the hash chain, `prev_hash` the hash of the row before
    it there and `hash` its own; the database fills all three (see crm.core.audit), so a
    changed, removed or moved row breaks the chain. On PostgreSQL they are filled when the
    writing transaction commits: chain order is commit order, and ids are only labels."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(30))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(50))
    changes: Mapped[dict | None] = mapped_column(JSON)
    detail: Mapped[str | None] = mapped_column(Text)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class Setting(Base):
    """Key/value settings the database carries (key fingerprint, demo marker, later rates)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# APScheduler's SQLAlchemyJobStore table (crm.core.scheduler), declared here with exactly the
# store's own columns (3.x) so the core migration creates it, the models-vs-migrations check
# covers it and the test fixtures empty it; the store finds it present and leaves it alone.
# Double is what the store's Float(25) becomes on PostgreSQL (double precision) and matches what
# reflection reads back.
scheduler_jobs = Table(
    "scheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Double, index=True),
    Column("job_state", LargeBinary, nullable=False),
)
