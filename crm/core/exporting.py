"""Bulk export of households, members, purchases and service records to CSV, JSON lines or
XLSX, streamed from the database. Columns follow the import schemas, so an export with
English headers by a user who sees personal data in full imports again unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from crm.core import audit, vocab
from crm.core.clock import to_local
from crm.core.errors import CrmError
from crm.core.models import (
    Building,
    Household,
    Member,
    Project,
    Purchase,
    ServiceRecord,
    Unit,
)
from crm.core.outfiles import csv_writer, output_file, write_xlsx
from crm.core.privacy import Disclosure, audit_guard, commit_audit
from crm.core.render import to_json
from crm.core.schemas import KIND_LABELS, SCHEMAS, Vocab, compile_schema

EXPORT_FORMATS = ("csv", "jsonl", "xlsx")
BATCH = 2000


@dataclass
class ExportResult:
    kind: str
    rows: int
    full_personal: int  # members whose phones/ID numbers were written in full


def _households() -> Select:
    return (
        select(
            Household.code,
            Household.name,
            Household.status,
            Project.name.label("project"),
            Household.age,
            Household.income_band,
            Household.housing,
            Household.education,
            Household.occupation,
            Household.club_activities,
            Household.member_tier,
            Household.consent_contact,
            Household.consent_marketing,
            Household.note,
        )
        .outerjoin(Project, Project.id == Household.project_id)
        .order_by(Household.id)
    )


def _members() -> Select:
    return (
        select(
            Member.id,
            Household.code.label("household_code"),
            Member.name,
            Member.role,
            Member.phone_masked,
            Member.alt_phone_masked,
            Member.id_number_masked,
        )
        .join(Household, Household.id == Member.household_id)
        .order_by(Member.id)
    )


def _unit_columns() -> list:
    return [Project.name.label("project"), Building.name.label("building"), Unit.code.label("unit")]


def _with_unit(query: Select, unit_id) -> Select:
    return (
        query.outerjoin(Unit, Unit.id == unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
        .outerjoin(Project, Project.id == Building.project_id)
    )


def _purchases() -> Select:
    referrer = aliased(Household)
    query = select(
        Purchase.contract_no,
        Household.code.label("household_code"),
        *_unit_columns(),
        Purchase.purchase_date,
        Purchase.floor_area,
        Purchase.amount,
        Purchase.channel,
        referrer.code.label("referrer_code"),
        Purchase.promotions_attended,
        Purchase.handover_date,
    ).join(Household, Household.id == Purchase.household_id)
    query = query.outerjoin(referrer, referrer.id == Purchase.referrer_household_id)
    return _with_unit(query, Purchase.unit_id).order_by(Purchase.id)


def _service() -> Select:
    query = select(
        ServiceRecord.record_no,
        Household.code.label("household_code"),
        ServiceRecord.kind,
        ServiceRecord.channel,
        ServiceRecord.status,
        ServiceRecord.opened_at,
        ServiceRecord.closed_at,
        ServiceRecord.summary,
        ServiceRecord.result,
        *_unit_columns(),
    ).join(Household, Household.id == ServiceRecord.household_id)
    return _with_unit(query, ServiceRecord.unit_id).order_by(ServiceRecord.id)


QUERIES: dict[str, Callable[[], Select]] = {
    "households": _households,
    "members": _members,
    "purchases": _purchases,
    "service": _service,
}


def columns(kind: str, headers: str = "zh") -> list[tuple[str, str]]:
    """(English name, header) pairs in schema order; Chinese headers use the first alias."""
    compiled = compile_schema(SCHEMAS[kind])
    return [(c.name, c.zh[0] if headers == "zh" and c.zh else c.name) for c in compiled.values()]


def _cell_writer(kind: str, headers: str) -> Callable[[str, Any], Any]:
    """How a value is written: codes as labels and booleans as 是/否 for Chinese headers."""
    fields = SCHEMAS[kind]().fields
    labels = {name: field.vocabulary for name, field in fields.items() if isinstance(field, Vocab)}
    chinese = headers == "zh"

    def cell(name: str, value: Any) -> Any:
        if value is None:
            return None
        if chinese and name in labels:
            return vocab.label(labels[name], value)
        if isinstance(value, bool):
            return ("是" if value else "否") if chinese else ("true" if value else "false")
        return value

    return cell


def export(
    session: Session,
    kind: str,
    out: IO[str] | Path,
    fmt: str = "csv",
    headers: str = "zh",
) -> ExportResult:
    """Write all rows of `kind` to `out` (a text stream for csv/jsonl, a path for xlsx and
    optionally for the others).

    Before the first byte is written, one `export` audit entry (and, for members shown in
    full, a `view_personal` entry naming them) is committed: an export cut short (`| head`,
    a full disk) is on record all the same, and where the audit log cannot be written (a
    read-only connection) nothing is written and the error is one sentence. This is why the
    function commits; the caller commits what follows (nothing, normally)."""
    user = audit.current_user(session)
    user.require("export", "导出数据")
    if kind not in QUERIES:
        raise CrmError(f"不认识的导出类型“{kind}”：可用 {'、'.join(QUERIES)}。")
    if fmt not in EXPORT_FORMATS:
        raise CrmError(f"不支持的导出格式“{fmt}”：可用 csv、jsonl、xlsx。")
    if headers not in ("zh", "en"):
        raise CrmError("表头语言只能是 zh（中文）或 en（英文）。")
    if fmt == "xlsx" and not isinstance(out, Path):
        raise CrmError("导出 XLSX 需要用 -o 指定输出文件。")
    pairs = columns(kind, headers)
    names = [name for name, _ in pairs]
    cell = _cell_writer(kind, headers)
    disclosure = Disclosure(session, f"导出{KIND_LABELS[kind]}") if kind == "members" else None
    total = session.scalar(
        select(func.count()).select_from(QUERIES[kind]().order_by(None).subquery())
    )
    detail = f"导出{KIND_LABELS[kind]} {total} 行（{fmt}，表头 {headers}）"
    planned = None
    if disclosure is not None and disclosure.full:
        planned = _members_with_personal_data(session)
        if planned:
            detail += f"；含完整个人信息 {len(planned)} 人"
    with audit_guard():
        audit.record(session, "export", _entity(kind), detail=detail)
    if disclosure is not None:
        if planned is not None:
            # Only these are shown in full: one added meanwhile is masked, not unaudited.
            disclosure.plan(planned)
        disclosure.record_now()
    else:
        commit_audit(session)
    written = 0

    def rows() -> Iterator[list[Any]]:
        nonlocal written
        result = session.execute(
            QUERIES[kind]().execution_options(yield_per=BATCH, stream_results=True)
        )
        for record in result:
            mapping = record._mapping
            if disclosure is not None:
                mapping = {**mapping, **disclosure.member(record)}
            written += 1
            yield [cell(name, mapping[name]) for name in names]

    header_row = [header for _, header in pairs]
    if fmt == "xlsx":
        with output_file(out) as part:
            write_xlsx(part, header_row, (_xlsx_row(row) for row in rows()))
    elif isinstance(out, Path):
        encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
        with output_file(out) as part, part.open("w", encoding=encoding, newline="") as fh:
            _write_text(fh, fmt, header_row, rows())
    else:
        _write_text(out, fmt, header_row, rows())
    return ExportResult(kind, written, disclosure.shown if disclosure is not None else 0)


def _members_with_personal_data(session: Session) -> list[int]:
    """Ids of the members a full export shows a phone, alternative phone or ID number of."""
    return list(
        session.scalars(
            select(Member.id)
            .where(
                or_(
                    Member.phone_masked.is_not(None),
                    Member.alt_phone_masked.is_not(None),
                    Member.id_number_masked.is_not(None),
                )
            )
            .order_by(Member.id)
        )
    )


def _entity(kind: str) -> str:
    return "service_records" if kind == "service" else kind


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return to_local(value).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | Decimal):
        return _text(value)
    return value


def _write_text(out: IO[str], fmt: str, header: list[str], rows: Iterator[list]) -> None:
    if fmt == "csv":
        writer = csv_writer(out)
        writer.writerow(header)
        for row in rows:
            # Numbers stay numbers: the writer neutralises text only (-5 is no formula).
            writer.writerow([v if isinstance(v, int | float | Decimal) else _text(v) for v in row])
        return
    for row in rows:
        record = {h: _json_value(v) for h, v in zip(header, row)}
        out.write(to_json(record, indent=None) + "\n")


def _xlsx_row(row: list) -> list:
    # Excel has no time zones: datetimes go in as business-zone wall time, as import reads them.
    return [to_local(v).replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in row]
