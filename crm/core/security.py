"""Roles, encryption of personal data, keyed look-up hashes and masking.

ID numbers and phone numbers are stored encrypted (AES-GCM) with a keyed HMAC beside them
for exact look-up; nobody sees them in full unless their role allows it, and each full view
is written to the audit log (see `crm.core.privacy`).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from crm.core.errors import CrmError, PermissionDenied

ROLES = {
    "sales": "销售",
    "agent": "客服专员",
    "manager": "经理",
    "analyst": "分析员",
    "admin": "系统管理员",
}
ROLE_ALIASES = {zh: code for code, zh in ROLES.items()} | {
    "客服": "agent",
    "service_agent": "agent",
}

# Permission -> roles that hold it. Checked in the library, so scripts and plugins obey it too.
PERMISSIONS = {
    "personal.full": {"manager", "admin"},
    "household.write": {"sales", "agent", "manager", "admin"},
    "import": {"sales", "agent", "manager", "admin"},
    # Changing the import limits (settings import.*: XLSX size and rows).
    "import.configure": {"manager", "admin"},
    "export": {"sales", "agent", "manager", "analyst", "admin"},
    "audit.read": {"manager", "admin"},
    # Training or replacing analysis models and segments (what campaigns then target).
    "analysis.train": {"analyst", "manager", "admin"},
    # Creating, scheduling and running campaigns; recording contacts is household.write.
    "campaign.manage": {"sales", "manager", "admin"},
    # Handling tickets, work orders and repairs: open, step, assess, close, revisit, commit.
    "ticket.handle": {"sales", "agent", "manager", "admin"},
    # Closing a revisit the customer was not satisfied with, without reopening the ticket: a
    # manager's decision, recorded with its reason.
    "ticket.override": {"manager", "admin"},
    # Configuring service: teams, staff, SLA policies and warranty periods (manager's decision).
    "service.configure": {"manager", "admin"},
    # Member club and owner activities: enrolment, tiers, activities, sign-ups, attendance.
    "retention.manage": {"sales", "agent", "manager", "admin"},
    # Recording satisfaction surveys (also ticket revisits) and raising relationship warnings.
    "satisfaction.record": {"sales", "agent", "manager", "admin"},
    # Changing profitability settings: rates, costs and the plan catalogue.
    "profitability.configure": {"manager", "admin"},
    # Fitting the purchase models and scoring customer lifetime value.
    "profitability.run": {"sales", "agent", "manager", "analyst", "admin"},
    # Running a coordination cycle (collect feedback, assess plans, dispatch the work).
    "coordination.run": {"sales", "agent", "manager", "admin"},
    # Starting the scheduler and syncing its jobs; each job also needs its own permission.
    "scheduler.run": {"sales", "agent", "manager", "admin"},
    # Changing how often the periodic jobs run (settings scheduler.*).
    "scheduler.configure": {"manager", "admin"},
}
DEFAULT_ROLE = "agent"


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    def require(self, permission: str, action: str) -> None:
        if not self.can(permission):
            allowed = "、".join(ROLES[r] for r in sorted(PERMISSIONS[permission]))
            raise PermissionDenied(
                f"角色“{ROLES[self.role]}”无权{action}；需要以下角色之一：{allowed}。"
            )

    @property
    def label(self) -> str:
        return f"{self.name}（{ROLES[self.role]}）"


def parse_user(spec: str | None) -> User:
    """Read `name:role`, or just `role`, as given by --as or CRM_USER.

    Without either, the user is the login name with the service-agent role, which sees
    personal data masked.
    """
    if not spec:
        return User(getpass.getuser(), DEFAULT_ROLE)
    name, _, role = spec.rpartition(":")
    role = role.strip()
    role = ROLE_ALIASES.get(role, role.lower())
    if role not in ROLES:
        choices = "、".join(f"{code}（{zh}）" for code, zh in ROLES.items())
        raise CrmError(f"不认识的角色“{role}”；可用角色：{choices}。")
    return User(name.strip() or getpass.getuser(), role)


class Vault:
    """Encrypts personal data and makes keyed look-up hashes from one 32-byte master key."""

    PREFIX = "v1:"

    def __init__(self, master_key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(master_key) != 32:
            raise CrmError("密钥长度不对：CRM_SECRET_KEY 必须是 32 字节的 urlsafe base64 编码。")
        self._aead = AESGCM(_derive(master_key, b"crm personal-data encryption"))
        self._hash_key = _derive(master_key, b"crm personal-data lookup")

    def encrypt(self, plain: str | None) -> str | None:
        if plain is None:
            return None
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain.encode(), None)
        return self.PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str | None) -> str | None:
        from cryptography.exceptions import InvalidTag

        if token is None:
            return None
        raw = base64.b64decode(token.removeprefix(self.PREFIX))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except InvalidTag:
            raise CrmError("无法解密个人信息：当前密钥与写入数据时的密钥不一致。") from None

    def lookup_hash(self, plain: str | None) -> str | None:
        """Deterministic keyed hash: equal inputs match, but the value cannot be guessed back."""
        if plain is None:
            return None
        return hmac.new(self._hash_key, plain.encode(), hashlib.sha256).hexdigest()

    def key_check(self) -> str:
        """A fingerprint stored in the database so a wrong key is caught before any write."""
        return self.lookup_hash("crm key check") or ""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return hmac.new(master, purpose, hashlib.sha256).digest()


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CrmError("密钥格式不对：应为 32 字节的 urlsafe base64 编码（可用 crm init 生成）。")
    return key


def load_vault(key_file: Path, create: bool = False) -> Vault:
    """The vault from CRM_SECRET_KEY, else from the key file (created with 0600 if asked)."""
    env_key = os.environ.get("CRM_SECRET_KEY")
    if env_key:
        return Vault(decode_key(env_key))
    if not key_file.exists():
        if not create:
            raise CrmError(
                f"找不到密钥文件 {key_file}：请先运行 crm init，或设置环境变量 CRM_SECRET_KEY。"
            )
        key_file.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes initialising at once must not overwrite each other's key.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_key() + "\n")
    if key_file.stat().st_mode & 0o077:
        raise CrmError(f"密钥文件 {key_file} 的权限过宽：请执行 chmod 600 {key_file}。")
    return Vault(decode_key(key_file.read_text()))


def mask_phone(phone: str | None) -> str | None:
    """138****5678: keep the first three and last four digits."""
    if not phone:
        return phone
    if len(phone) <= 7:
        return "*" * (len(phone) - 2) + phone[-2:]
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_id_number(number: str | None) -> str | None:
    """110105********1234: keep the region code and the last four characters."""
    if not number:
        return number
    if len(number) <= 10:
        return "*" * (len(number) - 4) + number[-4:]
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
