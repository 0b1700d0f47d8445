"""Showing personal data: masked by default, in full only for roles that may, and each full
view written to the audit log with the rows it disclosed, before any of it is output.

"Before" is what makes the log worth having: an output cut short (`crm export members | head`)
or a database that cannot take the entry (a read-only connection) must not leave full numbers
on a screen or in a file with no entry for them. So the entry is committed before the first
byte is written: a command that prints commits its transaction and then renders (the entry of
a `Disclosure` is in it); a function that writes a file or a stream itself calls
`Disclosure.record_now()` (or `commit_audit`) first. These are the only commits a library
function makes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Self

from sqlalchemy import and_, bindparam, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.errors import CrmError
from crm.core.models import Member
from crm.core.security import Vault, mask_id_number, mask_phone

AUDIT_REFUSED = "无法写入审计日志（数据库只读或拒绝写入），因此没有输出任何内容：请联系管理员。"


@contextmanager
def audit_guard() -> Iterator[None]:
    """Turn a database that refuses an audit entry into one sentence; the caller's
    transaction is rolled back by whoever owns it."""
    try:
        yield
    except DBAPIError:
        raise CrmError(AUDIT_REFUSED) from None


def commit_audit(session: Session) -> None:
    """Commit the audit entries written so far, before anything they cover is output;
    one sentence (and nothing output) when the database refuses them."""
    with audit_guard():
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise


def reads_sealed(session: Session) -> bool:
    """Whether this session may read members' ciphertext and hashes itself: on SQLite, and on
    PostgreSQL for the schema's owner not acting as a lower role. Any other session reads
    them only through the database's functions (migration 0006), which audit each read."""
    return session.info.get("reads_sealed", True)


def reveal(session: Session, member_ids: Collection[int], purpose: str) -> dict[int, tuple]:
    """member id -> (phone, alt_phone, id_number) ciphertext of those that have any, with
    one `view_personal` entry for them in the session's transaction (none when none has).

    A session that reads the ciphertext itself writes the entry; any other asks the
    database, which writes it before it returns anything and refuses a role that may not."""
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    if reads_sealed(session):
        table = Member.__table__
        found = {}
        for start in range(0, len(ids), 5000):
            part = ids[start : start + 5000]
            query = select(
                table.c.id, table.c.phone_enc, table.c.alt_phone_enc, table.c.id_number_enc
            ).where(
                table.c.id.in_(part),
                or_(
                    table.c.phone_enc.is_not(None),
                    table.c.alt_phone_enc.is_not(None),
                    table.c.id_number_enc.is_not(None),
                ),
            )
            found.update({row[0]: tuple(row[1:]) for row in session.execute(query)})
        if found:
            disclosed = sorted(found)
            audit.record(
                session,
                "view_personal",
                "members",
                disclosed[0] if len(disclosed) == 1 else None,
                detail=f"{purpose}；完整显示 {len(disclosed)} 人："
                + ",".join(map(str, disclosed[:200]))
                + ("…" if len(disclosed) > 200 else ""),
            )
        return found
    user = audit.current_user(session)
    rows = session.execute(
        text("SELECT * FROM crm_reveal_members(:ids, :purpose, :actor, :role)"),
        {"ids": ids, "purpose": purpose, "actor": user.name, "role": user.role},
    )
    return {row[0]: tuple(row[1:]) for row in rows}


class Disclosure:
    """Members' phones and ID numbers as the current user may see them, for one output.

    Masked values come from the masked columns. Full values (managers and administrators)
    are read through `reveal`, which writes the audit entry naming the members in the
    caller's transaction; the caller commits it before printing, or, writing a file or a
    stream itself, calls `record_now()` first. Read the members of one output together
    (`members`, or `plan` for a stream): one entry, one read.
    """

    def __init__(self, session: Session, purpose: str):
        self.session = session
        self.purpose = purpose
        self.vault: Vault = session.info["vault"]
        self.full = audit.current_user(session).can("personal.full")
        self.shown = 0  # members shown in full through this disclosure
        self._planned: Collection[int] | None = None
        self._tokens: dict[int, tuple] = {}
        self._granted: set[int] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        pass

    def plan(self, member_ids: Collection[int]) -> None:
        """Read the full values of these members now (the audit entry with them); any other
        member is then shown masked, as no entry covers it."""
        self._planned = frozenset(member_ids)
        if self.full:
            with audit_guard():
                self._tokens.update(reveal(self.session, member_ids, self.purpose))

    def grant(self, tokens: dict[int, tuple]) -> None:
        """Show these members in full although this user sees others masked: their tokens
        were read through a path that checked the user may see them and audited it (a
        caller's own contacts: see the campaigns plugin)."""
        self._tokens.update(tokens)
        self._granted.update(tokens)

    def record_now(self) -> None:
        """Commit the audit entry of the full views read so far, before any of them is
        output. One sentence, and nothing may be output, when that fails."""
        commit_audit(self.session)

    def members(self, members: list) -> list[dict[str, str | None]]:
        """`member` for each of `members` (Member rows or rows with their id and masked
        columns), their full values read at once."""
        if self.full and self._planned is None:
            wanted = [m.id for m in members if m is not None and m.id not in self._tokens]
            with audit_guard():
                self._tokens.update(reveal(self.session, wanted, self.purpose))
        return [self.member(m) if m is not None else _NOTHING for m in members]

    def member(self, member) -> dict[str, str | None]:
        """phone, alt_phone and id_number as this user may see them."""
        if member.id in self._granted:
            return self._shown(member, self._tokens[member.id])
        if self.full:
            planned = self._planned is None or member.id in self._planned
            if planned and member.id not in self._tokens and self._planned is None:
                with audit_guard():
                    self._tokens.update(reveal(self.session, [member.id], self.purpose))
            tokens = self._tokens.get(member.id) if planned else None
            if tokens is not None:
                return self._shown(member, tokens)
        return _masked(member)

    def _shown(self, member, tokens: tuple) -> dict[str, str | None]:
        """Full values where a token was read; masked where not (a grant may cover only the
        phone)."""
        self.shown += 1
        masked = _masked(member)
        return {
            name: self.vault.decrypt(token) if token is not None else masked[name]
            for name, token in zip(("phone", "alt_phone", "id_number"), tokens, strict=True)
        }


def _masked(member) -> dict[str, str | None]:
    return {
        "phone": member.phone_masked,
        "alt_phone": member.alt_phone_masked,
        "id_number": member.id_number_masked,
    }


_NOTHING: dict[str, str | None] = {"phone": None, "alt_phone": None, "id_number": None}


def seal_member_fields(
    vault: Vault,
    phone: str | None = None,
    alt_phone: str | None = None,
    id_number: str | None = None,
) -> dict[str, str | None]:
    """Column values for a member's personal data: ciphertext, look-up hashes, phone tail.

    Inputs must already be normalised (`crm.core.identity`), so equal numbers hash equally.
    """
    return {
        "phone_enc": vault.encrypt(phone),
        "phone_hash": vault.lookup_hash(phone),
        "phone_tail": phone[-4:] if phone else None,
        "phone_masked": mask_phone(phone),
        "alt_phone_enc": vault.encrypt(alt_phone),
        "alt_phone_hash": vault.lookup_hash(alt_phone),
        "alt_phone_tail": alt_phone[-4:] if alt_phone else None,
        "alt_phone_masked": mask_phone(alt_phone),
        "id_number_enc": vault.encrypt(id_number),
        "id_number_hash": vault.lookup_hash(id_number),
        "id_number_masked": mask_id_number(id_number),
    }


def fill_masks(session: Session, vault: Vault, batch: int = 2000) -> int:
    """Give members written before migration 0006 their masked columns and alternative
    phone hash, and those written before 0007 their alternative phone's tail (a migration
    has no key, so `crm init` and `crm db upgrade` do it); returns how many. Core UPDATE:
    deriving columns is not a change to anyone's data."""
    table = Member.__table__
    pending = or_(
        and_(table.c.phone_enc.is_not(None), table.c.phone_masked.is_(None)),
        and_(table.c.alt_phone_enc.is_not(None), table.c.alt_phone_masked.is_(None)),
        and_(table.c.alt_phone_enc.is_not(None), table.c.alt_phone_tail.is_(None)),
        and_(table.c.id_number_enc.is_not(None), table.c.id_number_masked.is_(None)),
    )
    done, last = 0, 0
    while True:
        rows = session.execute(
            select(table.c.id, table.c.phone_enc, table.c.alt_phone_enc, table.c.id_number_enc)
            .where(pending, table.c.id > last)
            .order_by(table.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return done
        values = []
        for row in rows:
            phone, alt, id_number = (vault.decrypt(token) for token in row[1:])
            values.append(
                {
                    "row_id": row.id,
                    "phone_masked": mask_phone(phone),
                    "alt_phone_hash": vault.lookup_hash(alt),
                    "alt_phone_tail": alt[-4:] if alt else None,
                    "alt_phone_masked": mask_phone(alt),
                    "id_number_masked": mask_id_number(id_number),
                }
            )
        session.execute(update(table).where(table.c.id == bindparam("row_id")), values)
        done, last = done + len(rows), rows[-1].id
