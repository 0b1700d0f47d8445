"""Reading the audit log (writing is in `crm.core.audit`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.core.audit import current_user
from crm.core.models import AuditEntry


def list_entries(
    session: Session,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 50,
) -> list[dict]:
    current_user(session).require("audit.read", "查看审计日志")
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    for column, value in (
        (AuditEntry.entity, entity),
        (AuditEntry.entity_id, entity_id),
        (AuditEntry.actor, actor),
        (AuditEntry.action, action),
    ):
        if value:
            query = query.where(column == value)
    return [
        {
            "at": entry.at,
            "actor": entry.actor,
            "role": entry.role,
            "action": entry.action,
            "entity": entry.entity,
            "entity_id": entry.entity_id,
            "changes": _changes_text(entry.changes),
            "detail": entry.detail,
        }
        for entry in session.scalars(query)
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
