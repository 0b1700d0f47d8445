"""The audit log: every ORM change to an `Audited` row, plus explicit entries for imports,
exports and each full view of personal data.

Entries are hash-chained: each row holds `chain_seq` (its place in the chain), `prev_hash`
(the `hash` of the row before it in the chain) and `hash`, the SHA-256 of `chain_text()` over
its own fields and `prev_hash`. The database fills them, whoever inserts (migration 0004):
PostgreSQL when the writing transaction commits, in a plpgsql constraint trigger, so the chain
follows commit order; SQLite on insert, in a trigger calling `sqlite_chain_hash` below, which
`sqlite_functions` registers on each connection. `crm.core.auditlog.verify_chain` recomputes
the chain in chain_seq order, the same way for both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session

from crm.core.models import Audited, AuditEntry, utcnow
from crm.core.security import SYSTEM_NAME, User

SYSTEM_USER = User(SYSTEM_NAME, "admin")

# The chain's formula, version 1: this tag, then each part as "<length>:<text>" (length in
# characters) or "-" for NULL. Lengths make the text unambiguous whatever the fields hold; the
# PostgreSQL trigger in migration 0004 builds exactly this text. Changing it breaks every chain.
CHAIN_TAG = "crm-audit-1"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_micros(at: dt.datetime) -> int:
    """Integer microseconds since 1970 UTC; a naive time is UTC (as SQLite stores it)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return (at - _EPOCH) // dt.timedelta(microseconds=1)


def chain_text(
    prev_hash: str | None,
    at: dt.datetime,
    actor: str,
    role: str,
    action: str,
    entity: str,
    entity_id: str | None,
    changes: str | None,
    detail: str | None,
) -> str:
    """The canonical text of one entry; `changes` is the JSON exactly as stored."""
    parts = (prev_hash, str(epoch_micros(at)), actor, role, action, entity, entity_id, changes)
    return CHAIN_TAG + "".join(
        "-" if part is None else f"{len(part)}:{part}" for part in (*parts, detail)
    )


def chain_hash(*fields) -> str:
    """SHA-256 (hex) of `chain_text(*fields)`."""
    return hashlib.sha256(chain_text(*fields).encode()).hexdigest()


def sqlite_chain_hash(prev_hash, at, actor, role, action, entity, entity_id, changes, detail):
    """`crm_audit_hash()` of the SQLite trigger: the row's values as SQLite stores them."""
    # SQLite gives back what its column affinity made of a value; the text is what counts.
    texts = [None if v is None else str(v) for v in (actor, role, action, entity, entity_id)]
    changes = None if changes is None else str(changes)
    detail = None if detail is None else str(detail)
    return chain_hash(prev_hash, dt.datetime.fromisoformat(at), *texts, changes, detail)


def sqlite_functions(dbapi_connection, _record) -> None:
    """Engine "connect" listener: the function the SQLite chain trigger calls."""
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("crm_audit_hash", 9, sqlite_chain_hash)


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
        if key in state.unloaded and mode != "update":
            # A deferred column never read (a member's ciphertext, which on PostgreSQL most
            # roles may not read): loading it to log "***" would be refused or wasted.
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
