"""Showing personal data: masked by default, in full only for roles that may, and each full
view written to the audit log with the rows it disclosed."""

from __future__ import annotations

from typing import Self

from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.models import Member
from crm.core.security import Vault, mask_id_number, mask_phone


class Disclosure:
    """Decrypts members' phones and ID numbers for one output.

    Use as a context manager: on exit, if anything was shown in full, one audit entry names
    the purpose and the member ids disclosed, in the caller's transaction (commit it).
    """

    def __init__(self, session: Session, purpose: str):
        self.session = session
        self.purpose = purpose
        self.vault: Vault = session.info["vault"]
        self.full = audit.current_user(session).can("personal.full")
        self.disclosed: list[int] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None and self.disclosed:
            audit.record(
                self.session,
                "view_personal",
                "members",
                self.disclosed[0] if len(self.disclosed) == 1 else None,
                detail=f"{self.purpose}；完整显示 {len(self.disclosed)} 人："
                + ",".join(map(str, self.disclosed[:200]))
                + ("…" if len(self.disclosed) > 200 else ""),
            )

    def member(self, member: Member) -> dict[str, str | None]:
        """phone, alt_phone and id_number as this user may see them."""
        phone = self.vault.decrypt(member.phone_enc)
        alt = self.vault.decrypt(member.alt_phone_enc)
        id_number = self.vault.decrypt(member.id_number_enc)
        if self.full:
            if phone or alt or id_number:
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
