"""Engine, sessions and transactions; SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from crm.core.errors import CrmError


def data_dir() -> Path:
    """Where the default database and key file live: CRM_HOME, else the user data dir."""
    home = os.environ.get("CRM_HOME")
    if home:
        return Path(home)
    import platformdirs

    return Path(platformdirs.user_data_dir("crm", appauthor=False))


def default_url() -> str:
    return f"sqlite:///{data_dir() / 'crm.db'}"


def resolve_url(url: str | None) -> str:
    """--db, else CRM_DATABASE_URL, else the SQLite file in the data dir."""
    url = url or os.environ.get("CRM_DATABASE_URL") or default_url()
    # A bare postgresql:// URL would pick psycopg2, which we do not install.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password hidden, for every message. Done on the text, not on the
    parsed URL, so a URL that does not parse, or a password with an unescaped "@", is hidden
    too (everything up to the last "@" of the authority is treated as the password)."""
    url = re.sub(r"(://[^/:@]*:)[^/]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def make_engine(url: str, create: bool = False) -> Engine:
    """An engine for `url`. A SQLite file is made (0600, in a 0700 folder) only when `create`
    is set (crm init, crm demo): a read command on a mistyped path must not leave files."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None and not path.exists():
            if not create:
                raise CrmError(
                    f"找不到数据库文件 {path}：请检查 --db 或 CRM_DATABASE_URL，"
                    "新建数据库请运行 crm init 或 crm demo。"
                )
            _create_private_file(path)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # The audit log's chain trigger calls a Python function (crm.core.audit).
        from crm.core.audit import sqlite_functions

        event.listen(engine, "connect", sqlite_functions)
        return engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    authority = url.partition("://")[2].partition("/")[0]
    if authority.count("@") > 1:
        # The driver would take the rest of the password for the host name and print it.
        raise CrmError(f"数据库地址 {safe_url(url)} 的用户名或密码里有未转义的“@”：请写成 %40。")
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:  # say which part
        reason = _without_password(str(exc), url)
        raise CrmError(f"无法使用数据库地址 {safe_url(url)}（{reason}）。") from None


def _without_password(text: str, url: str) -> str:
    """The library's message with the URL in it replaced by its safe form."""
    return text.replace(url, safe_url(url)) if url in text else text


def _create_private_file(path: Path) -> None:
    """An empty SQLite file only its owner can read (SQLite gives -wal/-shm the same mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # another process made it first: fine, it is the same new file
        pass


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while one writer imports; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # 64 MiB page cache (default 2 MiB): bulk imports insert into several indexes at random.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer: on SQLite, BEGIN IMMEDIATE takes the write
    lock now, waiting up to busy_timeout for another writer. pysqlite otherwise begins a
    deferred transaction at the first write; one that has read by then gets "database is
    locked" at once when another connection wrote meanwhile (its snapshot is stale), whatever
    the timeout. A transaction already begun is left as it is; other databases need nothing.
    Readers are not held up: WAL lets them read while the lock is held."""
    connection = session.connection()
    if (
        connection.dialect.name == "sqlite"
        and not connection.connection.dbapi_connection.in_transaction
    ):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit when the block succeeds, roll back when it raises: nothing half-written stays."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
