"""The audit log: every ORM change to an `Audited` row, plus explicit entries for imports,
exports and each full view of personal data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session

from crm.core.models import Audited, AuditEntry, utcnow
from crm.core.security import User

SYSTEM_USER = User("system", "admin")


def current_user(session: Session) -> User:
    return session.info.get("user") or SYSTEM_USER


def record(
    session: Session,
    action: str,
    entity: str,
    entity_id: Any = None,
    changes: dict | None = None,
    detail: str | None = None,
) -> None:
    """Write one audit entry in the caller's transaction."""
    user = current_user(session)
    session.execute(
        insert(AuditEntry),
        [
            {
                "at": utcnow(),
                "actor": user.name,
                "role": user.role,
                "action": action,
                "entity": entity,
                "entity_id": None if entity_id is None else str(entity_id),
                "changes": changes,
                "detail": detail,
            }
        ],
    )


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _changes(obj: Audited, mode: str) -> dict:
    state = inspect(obj)
    changes = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in ("created_at", "updated_at"):
            continue
        if mode == "update":
            history = state.attrs[key].history
            if not history.has_changes():
                continue
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old == new:
                continue
        else:
            value = getattr(obj, key)
            if value is None:
                continue
            old, new = (None, value) if mode == "create" else (value, None)
        if key in obj.__sensitive__:
            changes[key] = ["***", "***（已更改）"]
        else:
            changes[key] = [_plain(old), _plain(new)]
    return changes


def _primary_key(obj: Audited) -> str | None:
    # New rows have their key once flushed, but no identity yet inside the flush.
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return str(key[0]) if key and key[0] is not None else None


def _after_flush(session: Session, _flush_context) -> None:
    rows = []
    user = current_user(session)
    now = utcnow()
    for mode, objects in (
        ("create", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objects:
            if not isinstance(obj, Audited):
                continue
            if mode == "update" and not session.is_modified(obj, include_collections=False):
                continue
            changes = _changes(obj, mode)
            if mode == "update" and not changes:
                continue
            rows.append(
                {
                    "at": now,
                    "actor": user.name,
                    "role": user.role,
                    "action": mode,
                    "entity": obj.__tablename__,
                    "entity_id": _primary_key(obj),
                    "changes": changes,
                    "detail": None,
                }
            )
    if rows:
        session.connection().execute(insert(AuditEntry), rows)


def install(factory) -> None:
    """Attach the audit hook to a sessionmaker."""
    from sqlalchemy import event

    event.listen(factory, "after_flush", _after_flush)
