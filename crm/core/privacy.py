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


class Disclosure:
    """Decrypts members' phones and ID numbers for one output.

    Use as a context manager: on exit, if anything was shown in full and not yet recorded,
    one audit entry names the purpose and the member ids disclosed, in the caller's
    transaction, which the caller commits before printing. A function that writes the output
    itself calls `record_now()` before writing; a streamed output, which cannot gather its
    rows first, names them with `plan()` before `record_now()`.
    """

    def __init__(self, session: Session, purpose: str):
        self.session = session
        self.purpose = purpose
        self.vault: Vault = session.info["vault"]
        self.full = audit.current_user(session).can("personal.full")
        self.disclosed: list[int] = []  # shown in full, not yet in the audit log
        self.shown = 0  # members shown in full through this disclosure
        self._planned: Collection[int] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self._record()

    def plan(self, member_ids: Collection[int]) -> None:
        """Name the members about to be shown in full (before `record_now()`); any other
        member is then shown masked, as no entry covers it."""
        self._planned = frozenset(member_ids)
        if self.full:
            self.disclosed.extend(member_ids)

    def record_now(self) -> None:
        """Write the entry for the full views so far (or planned) and commit it, before any
        of them is output. One sentence, and nothing may be output, when that fails."""
        self._record()
        commit_audit(self.session)

    def _record(self) -> None:
        if not self.disclosed:
            return
        with audit_guard():
            audit.record(
                self.session,
                "view_personal",
                "members",
                self.disclosed[0] if len(self.disclosed) == 1 else None,
                detail=f"{self.purpose}；完整显示 {len(self.disclosed)} 人："
                + ",".join(map(str, self.disclosed[:200]))
                + ("…" if len(self.disclosed) > 200 else ""),
            )
        self.disclosed = []

    def member(self, member: Member) -> dict[str, str | None]:
        """phone, alt_phone and id_number as this user may see them."""
        phone = self.vault.decrypt(member.phone_enc)
        alt = self.vault.decrypt(member.alt_phone_enc)
        id_number = self.vault.decrypt(member.id_number_enc)
        planned = self._planned is None or member.id in self._planned
        if self.full and planned:
            if phone or alt or id_number:
                self.shown += 1
                if self._planned is None:
                    self.disclosed.append(member.id)
            return {"phone": phone, "alt_phone": alt, "id_number": id_number}
        return {
            "phone": mask_phone(phone),
            "alt_phone": mask_phone(alt),
            "id_number": mask_id_number(id_number),
        }


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
        "alt_phone_enc": vault.encrypt(alt_phone),
        "id_number_enc": vault.encrypt(id_number),
        "id_number_hash": vault.lookup_hash(id_number),
    }
