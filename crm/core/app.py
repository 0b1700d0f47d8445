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
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from crm.core import audit
from crm.core.db import data_dir, make_engine, resolve_url, session_factory
from crm.core.errors import CrmError
from crm.core.plugins import make_plugin_manager
from crm.core.security import User, Vault, load_vault, parse_user

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
        self.user = user or parse_user(os.environ.get("CRM_USER"))
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
        return session

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
