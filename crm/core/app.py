"""The App: one database, one user, one vault, one plugin manager.

Library functions take a Session; the App makes sessions that carry the user, the vault and
the plugin manager in `session.info`, so permission checks, encryption and the audit log work
the same from the CLI, from scripts and from plugins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cached_property

import pluggy
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from crm.core import audit
from crm.core.db import data_dir, make_engine, resolve_url, session_factory
from crm.core.errors import CrmError
from crm.core.plugins import make_plugin_manager
from crm.core.security import ROLES, User, Vault, load_vault, parse_user

KEY_CHECK = "security.key_check"


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
        self.pm = pm if pm is not None else make_plugin_manager(builtins)
        self._checked = False

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        factory = session_factory(self.engine)
        audit.install(factory)
        return factory

    @property
    def key_file(self):
        return os.environ.get("CRM_KEY_FILE") or data_dir() / "secret.key"

    @cached_property
    def vault(self) -> Vault:
        from pathlib import Path

        return load_vault(Path(self.key_file))

    def session(self) -> Session:
        """A new session for this user; the caller owns its transaction."""
        if not self._checked:
            self._check_database()
        session = self.sessions()
        session.info.update(user=self.user, vault=self.vault, pm=self.pm)
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

    def migration_chains(self):
        from crm.core.migrate import chains

        return chains(self.pm.hook.migration_locations())

    def init(self) -> dict[str, str | None]:
        """Create or upgrade the schema of the core and of every plugin, create the key if
        needed and pin it to the database. Returns chain -> revision."""
        from pathlib import Path

        from crm.core.migrate import upgrade
        from crm.core.models import Setting

        vault = load_vault(Path(self.key_file), create=True)
        self.__dict__["vault"] = vault
        revisions = upgrade(self.engine, self.migration_chains())
        with self.sessions() as session, session.begin():
            stored = session.get(Setting, KEY_CHECK)
            if stored is None:
                session.add(Setting(key=KEY_CHECK, value=vault.key_check()))
            elif stored.value != vault.key_check():
                raise _wrong_key()
            session.info.update(user=self.user, vault=vault, pm=self.pm)
            self.pm.hook.prepare_database(session=session)
        self._checked = True
        return revisions

    def _check_database(self) -> None:
        from crm.core.migrate import outdated
        from crm.core.models import Setting

        if not inspect(self.engine).has_table("alembic_version"):
            raise CrmError(f"数据库 {self.safe_url} 尚未初始化：请先运行 crm init。")
        self._database_user()
        behind = outdated(self.engine, self.migration_chains())
        if behind:
            names = "、".join(
                f"{chain.name}（{current or '无'} → {head}）" for chain, current, head in behind
            )
            raise CrmError(f"数据库结构需要升级：{names}；请运行 crm db upgrade。")
        with self.sessions() as session:
            stored = session.scalar(select(Setting.value).where(Setting.key == KEY_CHECK))
        if stored is not None and stored != self.vault.key_check():
            raise _wrong_key()
        self._checked = True

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def _wrong_key() -> CrmError:
    return CrmError("当前密钥与该数据库不匹配：请设置写入数据时使用的 CRM_SECRET_KEY 或密钥文件。")
