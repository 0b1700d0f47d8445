"""Engine, sessions and transactions; SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

import os
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


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:  # say which part is wrong
        raise CrmError(f"无法使用数据库地址 {url!r}：{exc}") from None


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
