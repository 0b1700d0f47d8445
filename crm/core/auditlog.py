"""Reading the audit log and checking its hash chain (writing is in `crm.core.audit`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from crm.core.audit import chain_hash, current_user
from crm.core.models import AuditEntry
from crm.core.paging import Page, between, fetch


def list_entries(
    session: Session,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Audit entries written in [since, until), newest first: one page of them, with how
    many match."""
    current_user(session).require("audit.read", "查看审计日志")
    # Newest first in the chain's order (on PostgreSQL the order entries were committed in).
    query = select(AuditEntry).order_by(
        AuditEntry.chain_seq.desc().nulls_first(), AuditEntry.id.desc()
    )
    query = query.where(*between(AuditEntry.at, since, until))
    for column, value in (
        (AuditEntry.entity, entity),
        (AuditEntry.entity_id, entity_id),
        (AuditEntry.actor, actor),
        (AuditEntry.action, action),
    ):
        if value:
            query = query.where(column == value)
    return fetch(session, query, limit, offset, scalars=True).map(
        lambda entry: {
            "at": entry.at,
            "actor": entry.actor,
            "role": entry.role,
            "action": entry.action,
            "entity": entry.entity,
            "entity_id": entry.entity_id,
            "changes": _changes_text(entry.changes),
            "detail": entry.detail,
            # as stored, for crm.core.auditlabels to say in Chinese
            "changes_data": entry.changes,
        }
    )


def search_alerts(session: Session, since: dt.datetime) -> list[dict]:
    """Users who hit the hourly limit of searches by personal data since `since`, the most
    refused first: per user how many refusals, the first and the last, what was refused last.
    A user turning masked numbers back into full ones looks like this; the managers' check."""
    current_user(session).require("audit.read", "查看个人信息查找超限提醒")
    refused = (
        select(
            AuditEntry.actor,
            AuditEntry.role,
            func.count().label("refusals"),
            func.min(AuditEntry.at).label("first"),
            func.max(AuditEntry.at).label("last"),
            func.max(AuditEntry.id).label("last_id"),
        )
        .where(AuditEntry.action == "search_limit", AuditEntry.at >= since)
        .group_by(AuditEntry.actor, AuditEntry.role)
        .subquery()
    )
    query = (
        select(refused, AuditEntry.detail)
        .join(AuditEntry, AuditEntry.id == refused.c.last_id)
        .order_by(refused.c.refusals.desc(), refused.c.last.desc())
    )
    return [
        {
            "actor": row.actor,
            "role": row.role,
            "refusals": row.refusals,
            "first": row.first,
            "last": row.last,
            "detail": row.detail,
        }
        for row in session.execute(query)
    ]


# A list longer than this shows its first items and how many there are.
LIST_SHOWN = 5


def _changes_text(changes: dict | None) -> str:
    """An entry's changes as one line. Row changes are [old, new] pairs, shown as "old → new"
    (so is any two-item list); entries written by a command may hold anything else (a count,
    a name, the numbers it touched), shown as it is, long lists cut short with their count."""
    if not changes:
        return ""
    return "；".join(f"{key}: {_change_text(value)}" for key, value in changes.items())


def _change_text(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        old, new = value
        return f"{_value_text(old)} → {_value_text(new)}"
    return _value_text(value)


def _value_text(value: Any) -> str:
    if value is None:
        return "空"
    if isinstance(value, list | tuple):
        if not value:
            return "无"
        shown = "、".join(_value_text(item) for item in value[:LIST_SHOWN])
        return f"{shown} 等 {len(value)} 项" if len(value) > LIST_SHOWN else shown
    if isinstance(value, dict):
        return "{" + "，".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


# What is wrong with the first broken link of the chain (the CLI labels them).
UNCHAINED = "unchained"  # the row has no hash or no place in the chain: written past the trigger
EDITED = "edited"  # the row's fields no longer give its hash
MISSING = "missing"  # it links to a row that is gone (deleted, or rewritten with a new hash)
REORDERED = "reordered"  # it links to another row that is still there, or to none


@dataclass(frozen=True)
class ChainBreak:
    id: int
    at: dt.datetime
    problem: str
    # The row before it in the chain (None for the first row).
    previous_id: int | None
    # REORDERED: the row its link names (None when it claims to be the first of the chain).
    linked_id: int | None = None


@dataclass(frozen=True)
class ChainCheck:
    checked: int
    last_hash: str | None
    broken: ChainBreak | None = None


def verify_chain(
    session: Session, batch: int = 2000, progress: Callable[[int], None] | None = None
) -> ChainCheck:
    """Walk the audit log in chain order (chain_seq: commit order on PostgreSQL, id order on
    SQLite) and recompute its hash chain; stop at the first broken link. A whole chain is then
    checked for rows left out of it. `progress` is called with the number of rows checked per
    batch. On PostgreSQL a transaction's own entries are chained only when it commits: verify
    in a session that has written nothing."""
    current_user(session).require("audit.read", "核对审计日志")
    fields = (
        AuditEntry.at,
        AuditEntry.actor,
        AuditEntry.role,
        AuditEntry.action,
        AuditEntry.entity,
        AuditEntry.entity_id,
        # The JSON text as stored, which is what was hashed (PostgreSQL's json keeps it).
        cast(AuditEntry.changes, Text),
        AuditEntry.detail,
    )
    query = select(AuditEntry.chain_seq, AuditEntry.id, AuditEntry.prev_hash, AuditEntry.hash)
    query = query.add_columns(*fields).order_by(AuditEntry.chain_seq).limit(batch)
    checked, previous_seq, previous_id, previous_hash = 0, None, None, None
    while True:
        # No lower bound at first: a place below 1 is no way out of the chain either.
        after = (
            AuditEntry.chain_seq > previous_seq if checked else AuditEntry.chain_seq.is_not(None)
        )
        rows = session.execute(query.where(after)).all()
        if not rows:
            break
        for seq, row_id, prev_hash, row_hash, *values in rows:
            checked += 1
            problem, linked_id = None, None
            if row_hash is None:
                problem = UNCHAINED
            elif chain_hash(prev_hash, *values) != row_hash:
                problem = EDITED
            elif prev_hash != previous_hash:
                linked_id = _row_with_hash(session, prev_hash)
                problem = MISSING if prev_hash is not None and linked_id is None else REORDERED
            if problem:
                broken = ChainBreak(row_id, values[0], problem, previous_id, linked_id)
                return ChainCheck(checked, previous_hash, broken)
            previous_seq, previous_id, previous_hash = seq, row_id, row_hash
        if progress:
            progress(len(rows))
    outside = session.execute(
        select(AuditEntry.id, AuditEntry.at)
        .where(AuditEntry.chain_seq.is_(None))
        .order_by(AuditEntry.id)
        .limit(1)
    ).first()
    if outside is None:
        return ChainCheck(checked, previous_hash)
    broken = ChainBreak(outside.id, outside.at, UNCHAINED, previous_id)
    return ChainCheck(checked + 1, previous_hash, broken)


def _row_with_hash(session: Session, value: str | None) -> int | None:
    if value is None:
        return None
    return session.scalar(select(func.min(AuditEntry.id)).where(AuditEntry.hash == value))


def find_hash(session: Session, value: str) -> int | None:
    """The id of the entry whose hash is `value` (a chain end noted earlier), or None."""
    current_user(session).require("audit.read", "核对审计日志")
    return _row_with_hash(session, value.strip().lower())


def count_entries(session: Session) -> int:
    current_user(session).require("audit.read", "核对审计日志")
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0
