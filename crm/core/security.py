"""Roles, encryption of personal data, keyed look-up hashes and masking.

ID numbers and phone numbers are stored encrypted (AES-GCM) with a keyed HMAC beside them
for exact look-up; nobody sees them in full unless their role allows it, and each full view
is written to the audit log (see `crm.core.privacy`).
"""

from __future__ import annotations

import base64
import functools
import getpass
import hashlib
import hmac
import os
import secrets
import unicodedata
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
    # Changing the hourly limit of searches by phone, phone tail or ID number.
    "privacy.configure": {"manager", "admin"},
    "export": {"sales", "agent", "manager", "analyst", "admin"},
    "audit.read": {"manager", "admin"},
    # Training or replacing analysis models and segments (what campaigns then target).
    "analysis.train": {"analyst", "manager", "admin"},
    # Creating, scheduling and running campaigns; recording contacts is household.write.
    "campaign.manage": {"sales", "manager", "admin"},
    # Sharing an outreach list among callers, each of whom then sees their contacts' phones.
    "campaign.assign": {"manager", "admin"},
    # Handling tickets, work orders and repairs: open, step, assess, close, revisit, commit.
    "ticket.handle": {"sales", "agent", "manager", "admin"},
    # Closing a revisit the customer was not satisfied with, without reopening the ticket: a
    # manager's decision, recorded with its reason.
    "ticket.override": {"manager", "admin"},
    # Reassigning (转交) any open ticket to another person; its owner and the supervisor of its
    # team may hand on their own (checked by the service plugin).
    "ticket.reassign": {"manager", "admin"},
    # Configuring service: teams, staff, SLA policies and warranty periods (manager's decision).
    "service.configure": {"manager", "admin"},
    # Member club and owner activities: enrolment, tiers, activities, sign-ups, attendance.
    "retention.manage": {"sales", "agent", "manager", "admin"},
    # Paying a project's 一路同行 loyalty fund its yearly allocation from profit (recording
    # contributions and spending is retention.manage).
    "fund.allocate": {"manager", "admin"},
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
    # Creating PostgreSQL logins for staff and putting them in a CRM role.
    "staff.login": {"admin"},
    # Backing up and rotating the personal-data key (whoever holds it can read everything).
    "key.manage": {"admin"},
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


# The name crm.core.audit writes for work no person started; no user may take it.
SYSTEM_NAME = "system"
RESERVED_NAMES = {SYSTEM_NAME, "系统"}
# Longest actor name the audit log keeps (audit_log.actor).
NAME_LENGTH = 100


def is_control(ch: str) -> bool:
    """C0/C1 controls, format characters (bidi overrides, zero-width), line and paragraph
    separators, lone surrogates: characters that can forge or hide text on a terminal."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def role_code(text: str) -> str:
    """The role code of `text`: a code (any case) or a Chinese name; CrmError if neither."""
    role = text.strip()
    role = ROLE_ALIASES.get(role, role.lower())
    if role not in ROLES:
        choices = "、".join(f"{code}（{zh}）" for code, zh in ROLES.items())
        raise CrmError(f"不认识的角色“{role}”；可用角色：{choices}。")
    return role


def parse_user(spec: str | None) -> User:
    """Read `name:role`, or just `role`, as given by --as or CRM_USER.

    Without either, the user is the login name with the service-agent role, which sees
    personal data masked.
    """
    if not spec:
        return User(getpass.getuser(), DEFAULT_ROLE)
    if any(is_control(ch) for ch in spec):
        raise CrmError(
            "操作人名字或角色中含有控制字符（如换行、ESC、双向文字控制符）：请去掉后再试。"
        )
    name, _, role = spec.rpartition(":")
    role = role_code(role)
    name = name.strip() or getpass.getuser()
    # NFKC and casefold: full-width or capital letters must not make "system" look new.
    if unicodedata.normalize("NFKC", name).casefold() in RESERVED_NAMES:
        raise CrmError(f"“{name}”是系统保留的操作人名字，不能用作用户名：请换一个名字。")
    if len(name) > NAME_LENGTH:
        raise CrmError(f"操作人名字太长：最多 {NAME_LENGTH} 个字符。")
    return User(name, role)


class Vault:
    """Encrypts personal data and makes keyed look-up hashes from one 32-byte master key."""

    PREFIX = "v1:"

    def __init__(self, master_key: bytes):
        if len(master_key) != 32:
            raise CrmError("密钥长度不对：CRM_SECRET_KEY 必须是 32 字节的 urlsafe base64 编码。")
        self._encryption_key = _derive(master_key, b"crm personal-data encryption")
        self._hash_key = _derive(master_key, b"crm personal-data lookup")

    @functools.cached_property
    def _aead(self):
        # cryptography loads on the first encryption or decryption, not for a command that
        # only checks the key (key_check is an HMAC) and shows masked data.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._encryption_key)

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

    @property
    def fingerprint(self) -> str:
        """The short form of `key_check` people compare (it reveals nothing about the key)."""
        return short_fingerprint(self.key_check())


def short_fingerprint(key_check: str) -> str:
    return key_check[:12]


def _derive(master: bytes, purpose: bytes) -> bytes:
    return hmac.new(master, purpose, hashlib.sha256).digest()


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def decode_key(text: str, source: str = "CRM_SECRET_KEY") -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CrmError(
            f"{source} 中的密钥格式不对：应为 32 字节的 urlsafe base64 编码（可用 crm init 生成）。"
        )
    return key


def key_source() -> str | None:
    """The name CRM_SECRET_KEY when the key comes from the environment, else None."""
    return "CRM_SECRET_KEY" if os.environ.get("CRM_SECRET_KEY") else None


def read_key_text(key_file: Path) -> str:
    """The key as text: CRM_SECRET_KEY, else the key file. Every failure is one sentence."""
    env_key = os.environ.get("CRM_SECRET_KEY")
    if env_key:
        decode_key(env_key)
        return env_key.strip()
    try:
        mode = key_file.stat().st_mode
        if mode & 0o077:
            raise CrmError(f"密钥文件 {key_file} 的权限过宽：请执行 chmod 600 {key_file}。")
        raw = key_file.read_bytes()
    except FileNotFoundError:
        raise CrmError(
            f"找不到密钥文件 {key_file}：请先运行 crm init，或设置环境变量 CRM_SECRET_KEY。"
        ) from None
    except PermissionError:
        raise CrmError(f"无权读取密钥文件 {key_file}：请以密钥文件的所有者运行 crm。") from None
    except IsADirectoryError:
        raise CrmError(f"密钥文件 {key_file} 是一个文件夹：请指向密钥文件本身。") from None
    except OSError as exc:
        raise CrmError(f"无法读取密钥文件 {key_file}（{exc.strerror}）。") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    decode_key(text, f"密钥文件 {key_file}")
    return text.strip()


def create_private_file(path: Path) -> int:
    """A new, empty file only its owner can read (folder 0700 when made here); its descriptor.

    O_EXCL: an existing file (a key!) is never overwritten, also not by a second process
    initialising at the same moment."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError here: a file where the folder should be
        raise CrmError(f"无法创建文件夹 {path.parent}（{exc.strerror}）。") from None
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CrmError(f"文件 {path} 已存在：不会覆盖，请换一个文件名或先移走它。") from None
    except OSError as exc:
        raise CrmError(f"无法创建密钥文件 {path}（{exc.strerror}）。") from None


def write_key_file(path: Path, key_text: str, fd: int | None = None) -> None:
    """Write a key to a new private file (or to `fd` from `create_private_file`), on disk
    (fsync) before this returns, because data may be encrypted with it next."""
    if fd is None:
        fd = create_private_file(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(key_text.strip() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a file created or renamed in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_vault(key_file: Path, create: bool = False) -> Vault:
    """The vault from CRM_SECRET_KEY, else from the key file (created 0600 if asked)."""
    if create and not key_source() and not key_file.exists():
        try:
            write_key_file(key_file, new_key())
        except CrmError:
            if not key_file.exists():
                raise
            # Another process initialising at the same moment wrote it first: use theirs.
    return Vault(decode_key(read_key_text(key_file)))


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
