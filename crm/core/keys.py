"""The personal-data key and the database: pinning, backup and rotation.

The database pins the key it was written with (`security.key_check`, a fingerprint that
reveals nothing about the key), so a wrong key is refused before anything is read or written.

Rotation re-encrypts every member's phones and ID number (and their look-up hashes) with a
new key, in batches, and survives being killed at any point:

1. the new key is written (fsync) to `<key file>.new` before anything is encrypted with it;
2. `security.key_rotation` pins the new key's fingerprint beside the old one and records the
   last member done; while it exists, every other command refuses and says to resume;
3. each batch re-encrypts its rows and moves that mark in one transaction, so a row is under
   the old key exactly when its id is above the mark;
4. one transaction pins the new key and drops the mark; then `<key file>.new` replaces the key
   file (an atomic rename).

Killed before 2, the old key still opens everything; between 2 and 4, `crm key rotate` resumes
where the mark says; after the last transaction but before the rename, `crm key rotate` only
renames. Stop the scheduler and other crm processes first: one started before the rotation
still holds the old key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.errors import CrmError
from crm.core.models import Member, Setting
from crm.core.security import (
    Vault,
    create_private_file,
    decode_key,
    key_source,
    load_vault,
    new_key,
    read_key_text,
    short_fingerprint,
    sync_folder,
    write_key_file,
)

KEY_CHECK = "security.key_check"
KEY_ROTATION = "security.key_rotation"
# Encrypted column -> the look-up hash made from the same value (None: no look-up by it).
SEALED = {
    "phone_enc": "phone_hash",
    "alt_phone_enc": "alt_phone_hash",
    "id_number_enc": "id_number_hash",
}
_members = Member.__table__
_any_sealed = or_(*(_members.c[column].is_not(None) for column in SEALED))


def pending_key_file(key_file: Path) -> Path:
    """Where a rotation keeps the new key until the database is switched to it."""
    return key_file.with_name(key_file.name + ".new")


def pinned(session: Session) -> tuple[str | None, dict | None]:
    """The pinned key fingerprint and the state of an unfinished rotation (or None)."""
    values = dict(
        session.execute(
            select(Setting.key, Setting.value).where(Setting.key.in_((KEY_CHECK, KEY_ROTATION)))
        ).all()
    )
    rotation = values.get(KEY_ROTATION)
    return values.get(KEY_CHECK), json.loads(rotation) if rotation else None


def has_sealed_data(session: Session) -> bool:
    return session.scalar(select(_members.c.id).where(_any_sealed).limit(1)) is not None


def opens_data(session: Session, vault: Vault, sample: int = 100) -> bool:
    """Whether `vault` decrypts the first `sample` members' personal data: the proof asked of
    a key before it is pinned to a database that already holds data without a pin."""
    rows = session.execute(
        select(*(_members.c[column] for column in SEALED)).where(_any_sealed).limit(sample)
    ).all()
    return all(_opens(vault, token) for row in rows for token in row if token is not None)


def _opens(vault: Vault, token: str) -> bool:
    try:
        vault.decrypt(token)
    except (CrmError, ValueError):
        return False
    return True


def wrong_key(vault: Vault, expected: str) -> CrmError:
    return CrmError(
        f"当前密钥（指纹 {vault.fingerprint}）与该数据库登记的密钥"
        f"（指纹 {short_fingerprint(expected)}）不匹配：请设置写入数据时使用的"
        " CRM_SECRET_KEY 或密钥文件。"
    )


def interrupted() -> CrmError:
    return CrmError(
        "个人信息密钥轮换尚未完成（上次被中断）：请运行 crm key rotate 继续，完成前其他命令不可用。"
    )


def require_admin(app) -> None:
    """Whoever holds the key can read every phone and ID number: only an administrator.
    The schema check first, so on PostgreSQL the user is the one the database login says."""
    app.check_schema()
    app.user.require("key.manage", "备份或轮换个人信息密钥")


def backup(app, target: Path) -> str:
    """Write the key in use to a new 0600 file, audited first; returns its fingerprint."""
    require_admin(app)
    key_text = read_key_text(app.key_file)
    fingerprint = Vault(decode_key(key_text)).fingerprint
    # app.session() checks the key against the database's pin: no backup of a wrong key.
    with app.session() as session:
        # The file first (never over another), then the audit entry, then the key's bytes.
        fd = create_private_file(target)
        try:
            with session.begin():
                audit.record(
                    session,
                    "key_backup",
                    "settings",
                    KEY_CHECK,
                    detail=f"个人信息密钥（指纹 {fingerprint}）备份到 {target.resolve()}",
                )
        except BaseException:
            os.close(fd)
            target.unlink()
            raise
    write_key_file(target, key_text, fd)
    return fingerprint


@dataclass
class Rotation:
    """One rotation, started or resumed: `run` the batches, then `finish`."""

    app: object
    key_file: Path
    old: Vault
    new: Vault
    remaining: int
    resumed: bool
    # The database already pins the new key (killed before the key file was replaced).
    switched: bool = False
    done: int = 0

    def _session(self) -> Session:
        session = self.app.sessions()
        session.info.update(user=self.app.user, vault=self.old, pm=self.app.pm)
        return session

    def run(self, batch_size: int = 500, progress: Callable[[int], None] | None = None) -> int:
        """Re-encrypt the remaining members, `batch_size` per transaction; returns how many."""
        while not self.switched:
            with self._session() as session, session.begin():
                count = rotate_batch(session, self.old, self.new, batch_size)
            if not count:
                break
            self.done += count
            if progress is not None:
                progress(count)
        return self.done

    def finish(self) -> None:
        """Pin the new key (one transaction), then put it in place of the key file."""
        with self._session() as session, session.begin():
            # Locked: of two runs finishing at once, one switches and the other finds it done.
            mark = _locked_mark(session)
            if mark is not None:
                # Members another process added since the last batch: rotate them here too.
                while rotate_batch(session, self.old, self.new, 500):
                    pass
                session.execute(
                    update(Setting)
                    .where(Setting.key == KEY_CHECK)
                    .values(value=self.new.key_check())
                )
                session.delete(mark)
                audit.record(
                    session,
                    "key_rotate",
                    "settings",
                    KEY_CHECK,
                    detail=(
                        f"个人信息密钥已轮换：指纹 {self.old.fingerprint} → {self.new.fingerprint}"
                    ),
                )
        install_new_key(self.key_file)


def start_rotation(app) -> Rotation:
    """Start a rotation, or pick up the one a crash interrupted."""
    require_admin(app)
    if not app.reads_sealed:
        raise CrmError(
            "在 PostgreSQL 上只有数据库所有者（运行 crm init 的维护登录）能读取加密的个人信息："
            "请以该登录运行 crm key rotate。"
        )
    if key_source():
        raise CrmError(
            "密钥来自环境变量 CRM_SECRET_KEY：轮换要写入新的密钥文件，"
            "请去掉该变量、用 CRM_KEY_FILE 指向密钥文件后再运行。"
        )
    key_file = app.key_file
    new_file = pending_key_file(key_file)
    with app.sessions() as session:
        stored, state = pinned(session)
    if stored is None:
        raise CrmError("数据库尚未登记个人信息密钥：请先运行 crm init。")
    old = load_vault(key_file)
    if stored != old.key_check():
        # Killed after the database was switched, before the key file was replaced?
        new = load_vault(new_file) if state is None and new_file.exists() else None
        if new is not None and new.key_check() == stored:
            return Rotation(app, key_file, old, new, 0, resumed=True, switched=True)
        raise wrong_key(old, stored)
    if state is None:
        # A .new file without a rotation mark was never used: reuse it rather than pile up keys.
        try:
            write_key_file(new_file, new_key())
        except CrmError:
            if not new_file.exists():
                raise
        new = load_vault(new_file)
        try:
            with app.sessions() as session, session.begin():
                session.info.update(user=app.user, vault=old, pm=app.pm)
                session.add(Setting(key=KEY_ROTATION, value=_mark(new, 0)))
                audit.record(
                    session,
                    "key_rotate_start",
                    "settings",
                    KEY_CHECK,
                    detail=f"开始轮换个人信息密钥：指纹 {old.fingerprint} → {new.fingerprint}",
                )
        except IntegrityError:
            raise CrmError("另一个 crm key rotate 刚刚开始了轮换：请等它结束。") from None
        resumed = False
        state = {"next": new.key_check(), "last_id": 0}
    else:
        if not new_file.exists():
            raise CrmError(
                f"密钥轮换进行到一半，但新密钥文件 {new_file} 不见了：已有部分数据用它加密，"
                "请把它放回原处后运行 crm key rotate。"
            )
        new = load_vault(new_file)
        if new.key_check() != state["next"]:
            raise CrmError(
                f"{new_file} 不是这次轮换的新密钥（应为指纹 {short_fingerprint(state['next'])}）："
                "请放回正确的文件后运行 crm key rotate。"
            )
        resumed = True
    with app.sessions() as session:
        remaining = session.scalar(
            select(func.count())
            .select_from(_members)
            .where(_any_sealed, _members.c.id > state["last_id"])
        )
    return Rotation(app, key_file, old, new, remaining, resumed)


def rotate(app, batch_size: int = 500, progress: Callable[[int], None] | None = None) -> Rotation:
    """Start (or resume) a rotation and carry it through."""
    rotation = start_rotation(app)
    rotation.run(batch_size, progress)
    rotation.finish()
    return rotation


def _locked_mark(session: Session) -> Setting | None:
    """The rotation mark, locked for this transaction, or None once a rotation is done.

    A no-op UPDATE takes the lock on both backends: the row lock on PostgreSQL, the write lock
    on SQLite (whose SELECT ... FOR UPDATE does nothing), so two runs never read the same mark.
    """
    session.execute(update(Setting).where(Setting.key == KEY_ROTATION).values(value=Setting.value))
    return session.scalar(select(Setting).where(Setting.key == KEY_ROTATION))


def _mark(new: Vault, last_id: int) -> str:
    return json.dumps({"next": new.key_check(), "last_id": last_id})


def rotate_batch(session: Session, old: Vault, new: Vault, batch_size: int) -> int:
    """Re-encrypt the next `batch_size` members after the mark and move the mark, in the
    caller's transaction; returns how many rows (0: none left)."""
    mark = _locked_mark(session)
    if mark is None:  # another `crm key rotate` finished this rotation meanwhile
        return 0
    state = json.loads(mark.value)
    rows = session.execute(
        select(_members.c.id, _members.c.updated_at, *(_members.c[column] for column in SEALED))
        .where(_any_sealed, _members.c.id > state["last_id"])
        .order_by(_members.c.id)
        .limit(batch_size)
    ).all()
    if not rows:
        return 0
    values = []
    for row in rows:
        # updated_at as it was: re-encryption is not a change to the person's data.
        value = {"row_id": row.id, "updated_at": row.updated_at}
        for column, hash_column in SEALED.items():
            plain = _open(row, column, old, new)
            value[column] = new.encrypt(plain)
            if hash_column:
                value[hash_column] = new.lookup_hash(plain)
        values.append(value)
    # Core UPDATE: the ORM audit hook would log thousands of "***" changes for a key change.
    session.execute(update(_members).where(_members.c.id == bindparam("row_id")), values)
    mark.value = _mark(new, rows[-1].id)
    return len(rows)


def _open(row, column: str, old: Vault, new: Vault) -> str | None:
    token = getattr(row, column)
    if token is None:
        return None
    for vault in (old, new):
        try:
            return vault.decrypt(token)
        except (CrmError, ValueError):
            continue
    raise CrmError(
        f"成员 {row.id} 的 {column} 用旧密钥和新密钥都无法解开：轮换已停止，数据未改动。"
    )


def install_new_key(key_file: Path) -> None:
    """Put the pinned new key in place of the key file (atomic rename, then fsync)."""
    try:
        os.replace(pending_key_file(key_file), key_file)
    except FileNotFoundError:  # already in place (another run, or nothing left to install)
        return
    sync_folder(key_file.parent)
