"""The App: one database, one user, one vault, one plugin manager.

Library functions take a Session; the App makes sessions that carry the user, the vault and
the plugin manager in `session.info`, so permission checks, encryption and the audit log work
the same from the CLI, from scripts and from plugins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import pluggy
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from crm.core import audit
from crm.core.db import data_dir, make_engine, resolve_url, safe_url, session_factory, sqlite_path
from crm.core.errors import CrmError
from crm.core.plugins import make_plugin_manager
from crm.core.security import ROLES, User, Vault, key_source, load_vault, parse_user
from crm.core.startup import resume_collection

KEY_CHECK = "security.key_check"  # also crm.core.keys.KEY_CHECK


class App:
    def __init__(
        self,
        url: str | None = None,
        user: User | None = None,
        builtins: Iterable[str] = (),
        pm: pluggy.PluginManager | None = None,
    ):
        self.url = resolve_url(url)
        # Who the caller says they are (--as, CRM_USER or the `user` argument). On SQLite that
        # is the identity; on PostgreSQL the database login decides (see `_database_user`).
        self.claimed = user is not None or bool(os.environ.get("CRM_USER"))
        self.user = user or parse_user(os.environ.get("CRM_USER"))
        # On PostgreSQL, the CRM group role each transaction runs under when the schema's
        # owner acts as a lower role, so the database applies that role's privileges.
        self._acting_role: str | None = None
        # Whether sessions read members' ciphertext themselves (crm.core.privacy.reads_sealed).
        self.reads_sealed = True
        self.pm = pm if pm is not None else make_plugin_manager(builtins)
        self._checked = False
        # Only init (crm init, crm demo) may create a SQLite file; read commands never do.
        self._create = False

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.url, create=self._create)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        # Start-up is over once a command reaches the database (crm.core.startup).
        resume_collection()
        factory = session_factory(self.engine)
        audit.install(factory)
        return factory

    @property
    def key_file(self) -> Path:
        return Path(os.environ.get("CRM_KEY_FILE") or data_dir() / "secret.key")

    @cached_property
    def vault(self) -> Vault:
        return load_vault(self.key_file)

    def session(self) -> Session:
        """A new session for this user; the caller owns its transaction."""
        if not self._checked:
            self._check_database()
        session = self.sessions()
        session.info.update(
            user=self.user, vault=self.vault, pm=self.pm, reads_sealed=self.reads_sealed
        )
        if self._acting_role:
            event.listen(session, "after_begin", self._set_role)
        return session

    def _set_role(self, _session, _transaction, connection) -> None:
        connection.exec_driver_sql(f"SET LOCAL ROLE crm_{self._acting_role}")

    def _database_user(self) -> None:
        """On PostgreSQL, the user is the database login and its CRM group role.

        The schema's owner (the maintenance login that runs `crm init`) may act as any user
        (--as): it can rewrite everything anyway, and its transactions then run under the
        CRM role it acts as, so the database applies that role's privileges. Any other login
        is who it logged in as; claiming another role is refused.
        """
        self.reads_sealed = True
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect() as connection:
            if connection.scalar(text("SELECT to_regprocedure('crm_role_of(name)')")) is None:
                return  # a schema from before the roles: the revision check says to upgrade
            login, owner, role = connection.execute(
                text("SELECT session_user, crm_is_owner(), crm_role_of(session_user)")
            ).one()
        if owner:
            if not self.claimed:
                self.user = User(login, "admin")
            self._acting_role = None if self.user.role == "admin" else self.user.role
            # Acting as a lower role, the owner's transactions run under that role's
            # privileges, which do not reach members' ciphertext (migration 0006).
            self.reads_sealed = self._acting_role is None
            return
        if role is None:
            raise CrmError(
                f"数据库登录“{login}”没有 CRM 角色：请管理员运行 crm staff role {login} <角色>。"
            )
        if self.claimed and self.user.role != role:
            raise CrmError(
                f"在 PostgreSQL 上，身份和角色由数据库登录决定：当前登录“{login}”的角色是"
                f"“{ROLES[role]}”，不能以“{ROLES[self.user.role]}”的身份操作"
                "（--as 与 CRM_USER 只用于内置的 SQLite 数据库）。"
            )
        self.user = User(login, role)
        self.reads_sealed = False

    def migration_chains(self):
        from crm.core.migrate import chains

        return chains(self.pm.hook.migration_locations())

    def init(self) -> dict[str, str | None]:
        """Create or upgrade the schema of the core and of every plugin, create the key if
        needed and pin it to the database. Returns chain -> revision.

        Refuses a database with tables that are not ours, one written by a newer crm, and an
        unfinished key rotation; never makes a new key for a database whose data has one."""
        from crm.core import keys
        from crm.core.migrate import upgrade
        from crm.core.models import Setting
        from crm.core.privacy import fill_masks

        if "engine" not in self.__dict__ and sqlite_path(self.url) is not None:
            self._create = True
        tables = self._tables()
        stored, sealed = None, False
        if "alembic_version" in tables:
            self._refuse_newer(tables)
            with self.sessions() as session:
                stored, rotation = keys.pinned(session)
                sealed = keys.has_sealed_data(session)
            if rotation is not None:
                raise keys.interrupted()
        elif tables:
            raise self._foreign(tables)
        vault = self._vault_for_init(stored, sealed)
        if stored is not None and stored != vault.key_check():
            raise self._wrong_key(vault, stored)  # before any migration touches the database
        self.__dict__["vault"] = vault
        revisions = upgrade(self.engine, self.migration_chains())
        with self.sessions() as session, session.begin():
            session.info.update(user=self.user, vault=vault, pm=self.pm)
            pin = session.get(Setting, KEY_CHECK, with_for_update=True)
            if pin is None:
                if keys.has_sealed_data(session):
                    # The pin was lost (deleted by hand?): pin this key again only if it
                    # opens the data already there, and say so in the audit log.
                    if not keys.opens_data(session, vault):
                        raise CrmError(
                            "数据库没有登记密钥，且当前密钥（指纹 "
                            f"{vault.fingerprint}）解不开已有的个人信息：请换用写入数据时的密钥。"
                        )
                    audit.record(
                        session,
                        "key_pin",
                        "settings",
                        KEY_CHECK,
                        detail=f"重新登记个人信息密钥（指纹 {vault.fingerprint}），已核对可解密现有数据",
                    )
                session.add(Setting(key=KEY_CHECK, value=vault.key_check()))
            elif pin.value != vault.key_check():
                raise self._wrong_key(vault, pin.value)
            fill_masks(session, vault)
            self.pm.hook.prepare_database(session=session)
        self._checked = True
        return revisions

    def _vault_for_init(self, stored: str | None, sealed: bool) -> Vault:
        """The key for init: a new one only for a database that has none and no data."""
        from crm.core.security import short_fingerprint

        if (stored or sealed) and not key_source() and not self.key_file.exists():
            which = f"指纹为 {short_fingerprint(stored)} 的密钥" if stored else "原来的密钥"
            raise CrmError(
                f"数据库 {self.safe_url} 的个人信息已用{which}加密，但找不到密钥文件 "
                f"{self.key_file}：请把该密钥的备份放回此处或设置 CRM_SECRET_KEY；"
                "crm init 不会为已有数据的数据库生成新密钥。"
            )
        return load_vault(self.key_file, create=True)

    def _tables(self) -> set[str]:
        """The tables in the database; a file that is not SQLite is one sentence."""
        from sqlalchemy.exc import DatabaseError, OperationalError

        try:
            return set(inspect(self.engine).get_table_names())
        except DatabaseError as exc:
            if isinstance(exc, OperationalError) or "not a database" not in str(exc.orig):
                raise
            raise CrmError(
                f"{sqlite_path(self.url) or self.safe_url} 不是 SQLite 数据库文件（已损坏或是别的文件）："
                "请检查 --db 或 CRM_DATABASE_URL。"
            ) from None

    def _foreign(self, tables: set[str]) -> CrmError:
        names = "、".join(sorted(tables)[:5]) + ("等" if len(tables) > 5 else "")
        return CrmError(
            f"数据库 {self.safe_url} 里已有不属于本系统的表（{names}）：crm 只在空数据库或"
            "本系统的数据库上建表，请换一个数据库地址。"
        )

    def _refuse_newer(self, tables: set[str], found=None) -> None:
        from crm.core.migrate import states

        if found is None:
            found = states(self.engine, self.migration_chains(), tables)
        ahead = [state for state in found if not state.known]
        if not ahead:
            return
        if "settings" not in tables:  # another program's alembic history, not a newer crm's
            raise self._foreign(tables)
        names = "、".join(f"{state.chain.name} {state.current}" for state in ahead)
        raise CrmError(
            f"数据库 {self.safe_url} 的结构比当前 crm 新（{names}）：请升级 crm 后再使用，"
            "不要用旧版本升级或写入它。"
        )

    def check_schema(self) -> None:
        """The database exists, is ours, and its schema is the one this crm expects."""
        from crm.core.migrate import states

        tables = self._tables()
        if "alembic_version" not in tables:
            if tables:
                raise self._foreign(tables)
            raise CrmError(f"数据库 {self.safe_url} 尚未初始化：请先运行 crm init。")
        self._database_user()
        found = states(self.engine, self.migration_chains(), tables)
        self._refuse_newer(tables, found)
        behind = [state for state in found if state.behind]
        if behind:
            names = "、".join(
                f"{state.chain.name}（{state.current or '无'} → {state.head}）" for state in behind
            )
            raise CrmError(f"数据库结构需要升级：{names}；请运行 crm db upgrade。")

    def _check_database(self) -> None:
        from crm.core import keys

        self.check_schema()
        with self.sessions() as session:
            stored, rotation = keys.pinned(session)
            sealed = stored is None and keys.has_sealed_data(session)
        if rotation is not None:
            raise keys.interrupted()
        if sealed:
            raise CrmError(
                "数据库没有登记密钥（security.key_check），却已有加密的个人信息：无法确认当前密钥"
                "是否正确；请运行 crm init，它会先核对当前密钥能否解开已有数据再重新登记。"
            )
        if stored is not None and stored != self.vault.key_check():
            raise self._wrong_key(self.vault, stored)
        self._checked = True

    def _wrong_key(self, vault: Vault, stored: str) -> CrmError:
        from crm.core import keys

        pending = keys.pending_key_file(self.key_file)
        if not key_source() and pending.exists() and load_vault(pending).key_check() == stored:
            return CrmError(
                "密钥轮换已写入数据库，但密钥文件尚未替换（上次被中断）：请运行 crm key rotate 完成。"
            )
        return keys.wrong_key(vault, stored)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return safe_url(self.url)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
