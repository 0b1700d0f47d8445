"""Reading the audit log (writing is in `crm.core.audit`)."""

from __future__ import annotations

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


def _changes_text(changes: dict | None) -> str:
    if not changes:
        return ""
    return "；".join(f"{key}: {old} → {new}" for key, (old, new) in changes.items())
