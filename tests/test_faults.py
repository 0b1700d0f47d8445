"""Database faults: a newer, garbage, foreign or missing database is one sentence; read commands
create nothing; error hints fit the error; no password in any message; private files."""

from __future__ import annotations

import os
import sqlite3
import stat
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from crm.cli import cli
from crm.core.errors import database_message
from tests.conftest import BACKENDS, PG_URL

READ_COMMANDS = [
    ("household", "list"),
    ("household", "search", "张"),
    ("audit", "list"),
    ("export", "households", "-o", "out.csv"),
    ("db", "current"),
]


def crm(*args: str, db: str | None = None):
    runner = CliRunner()
    prefix = ["--db", db] if db else []
    return runner.invoke(cli, [*prefix, "--as", "测试管理员:admin", *args])


def one_sentence(result) -> str:
    """The result is a clean refusal: a non-zero exit, one line on stderr, no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("错误："), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path):
    """A database with no tables: a new SQLite path, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    schema = f"crm_fault_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def tables(url: str) -> set[str]:
    from sqlalchemy import inspect

    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# --- a database written by a newer crm --------------------------------------------------------


def test_newer_schema_is_refused_by_every_command_and_by_upgrade(app, db_url, run):
    from crm.core.migrate import head_revision

    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'zz9999_future'"))
    try:
        for args in (("household", "list"), ("db", "upgrade"), ("init",)):
            sentence = one_sentence(run(*args))
            assert "比当前 crm 新" in sentence and "zz9999_future" in sentence
            assert "crm db upgrade" not in sentence.split("：", 1)[1]
        with engine.connect() as conn:  # nothing was "upgraded" over it
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "zz9999_future"
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()}
            )
        engine.dispose()


def test_a_database_behind_still_says_upgrade(app, db_url, run):
    engine = create_engine(db_url)
    with engine.begin() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    try:
        assert "crm db upgrade" in one_sentence(run("household", "list"))
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        engine.dispose()


# --- garbage, foreign and missing databases ---------------------------------------------------


@pytest.mark.parametrize("content", [b"garbage, not a database\n" * 40, bytes(range(256)) * 32])
def test_a_garbage_sqlite_file_is_one_sentence_for_every_command(tmp_path, content, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "crm.db"
    path.write_bytes(content)
    url = f"sqlite:///{path}"
    for args in [*READ_COMMANDS, ("init",), ("db", "upgrade")]:
        sentence = one_sentence(crm(*args, db=url))
        assert "不是 SQLite 数据库" in sentence or "已损坏" in sentence, (args, sentence)
    assert path.read_bytes() == content


def test_init_refuses_a_foreign_database(empty_url):
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)"))
        conn.execute(text("INSERT INTO invoices VALUES (1, 100)"))
    engine.dispose()
    for args in (("init",), ("db", "upgrade"), ("household", "list")):
        sentence = one_sentence(crm(*args, db=empty_url))
        assert "不属于本系统的表（invoices）" in sentence
    assert tables(empty_url) == {"invoices"}


def test_init_refuses_another_programs_alembic_history(empty_url):
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('abc123')"))
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    assert "不属于本系统的表" in one_sentence(crm("init", db=empty_url))
    assert tables(empty_url) == {"alembic_version", "orders"}


def test_init_on_an_empty_database_creates_the_schema(empty_url):
    result = crm("init", db=empty_url)
    assert result.exit_code == 0, result.output
    assert {"households", "members", "settings", "alembic_version"} <= tables(empty_url)


def test_read_commands_on_a_missing_path_create_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no" / "such" / "folder" / "crm.db"
    for args in READ_COMMANDS:
        sentence = one_sentence(crm(*args, db=f"sqlite:///{missing}"))
        assert "找不到数据库文件" in sentence and "crm init" in sentence
        assert not (tmp_path / "no").exists(), args
    # the default database in the data dir: neither the folder nor the key appear
    home = tmp_path / "home"
    monkeypatch.setenv("CRM_HOME", str(home))
    monkeypatch.delenv("CRM_SECRET_KEY")
    for args in READ_COMMANDS:
        assert "找不到数据库文件" in one_sentence(crm(*args))
    assert not home.exists()


def test_init_makes_private_files(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CRM_HOME", str(home))
    monkeypatch.delenv("CRM_SECRET_KEY")
    old = os.umask(0o022)  # the usual umask would give 0644 files and 0755 folders
    try:
        result = crm("init")
        assert result.exit_code == 0, result.output
        assert crm("household", "list").exit_code == 0  # writes the WAL, if any
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("crm.db", "secret.key"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    for extra in home.glob("crm.db-*"):  # SQLite gives -wal and -shm the file's own mode
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra


# --- hints that fit the error ------------------------------------------------------------------


def _lock_error(db_url: str) -> OperationalError:
    """A real lock error from this backend: one connection holds a lock, another gives up."""
    engine = create_engine(db_url)
    if db_url.startswith("sqlite"):
        path = db_url.split(":///", 1)[1]
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        waiter = create_engine(db_url, connect_args={"timeout": 0})
        try:
            with waiter.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO settings (key, value, updated_at) VALUES ('x', 'y', '2026-01-01')"
                    )
                )
        except OperationalError as exc:
            return exc
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            waiter.dispose()
            engine.dispose()
    with engine.connect() as holder, engine.connect() as waiter:
        holder.begin()
        holder.execute(text("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE"))
        waiter.begin()
        waiter.execute(text("SET LOCAL lock_timeout = '50ms'"))
        try:
            waiter.execute(text("SELECT * FROM settings"))
        except OperationalError as exc:
            return exc
        finally:
            holder.rollback()
            waiter.rollback()
            engine.dispose()
    raise AssertionError("no lock error")


def test_a_lock_error_says_busy_not_upgrade(app, db_url):
    message = database_message(_lock_error(db_url))
    assert "数据库正忙" in message and "稍后重试" in message
    assert "upgrade" not in message


def test_a_missing_table_says_upgrade(app, db_url):
    engine = create_engine(db_url)
    with pytest.raises((OperationalError, ProgrammingError)) as raised, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table_here"))
    engine.dispose()
    assert "crm db upgrade" in database_message(raised.value)


# --- no password in any message ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://clerk:Topsecret9@db.example/crm",  # driver not installed
        "postgresql+psycopg://clerk:Topsecret9@127.0.0.1:notaport/crm",  # does not parse
        "postgresql+psycopg://clerk:Top@secret9@127.0.0.1:1/crm",  # nothing listens on port 1
        "postgresql+psycopg://clerk@127.0.0.1:1/crm?password=Topsecret9",
        "oracle://clerk:Topsecret9@",
    ],
)
def test_no_password_in_any_message(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (("household", "list"), ("init",), ("db", "current")):
        result = crm(*args, db=url)
        sentence = one_sentence(result)
        assert "secret9" not in result.output, sentence
        assert "Topsecret" not in result.output


def test_a_connection_failure_says_connect(monkeypatch, tmp_path):
    sentence = one_sentence(crm("household", "list", db="postgresql://clerk:pw1234@127.0.0.1:1/x"))
    assert "无法连接数据库" in sentence and "pw1234" not in sentence
