"""Showing personal data: masked by default, in full only for roles that may, and each full
view written to the audit log with the rows it disclosed."""

from __future__ import annotations

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

    def __enter__(self) -> Disclosure:
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
