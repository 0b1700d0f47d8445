"""Shared fixtures: every database test runs on SQLite and, when CRM_TEST_DATABASE_URL is set,
on PostgreSQL in a schema of its own that is dropped after the run.

CRM_TEST_CLOCK_SHIFT_DAYS=N runs the whole session with Python's clock N days ahead (it keeps
ticking), so a test that quietly depends on today's date fails today rather than on the day
its figures change; CI runs the suite once as is and once a year ahead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import crm.plugins.analysis.models
import crm.plugins.campaigns.models
import crm.plugins.coordination.models
import crm.plugins.profitability.models
import crm.plugins.satisfaction.models
import crm.plugins.service.models  # noqa: F401
from crm.core.app import App
from crm.core.clock import to_local
from crm.core.models import Base
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS

PG_URL = os.environ.get("CRM_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
# A fixed key for the tests: the template database is pinned to it.
TEST_KEY = "q6bq2mQ2HkCSv0f1GmO2e4Yj0f3QGq2x0qk9d8b7a6E="
ADMIN = User("测试管理员", "admin")
# The fixed moment of the tests whose data and commands count from "now" (demos, duty-desk lists):
# 2026-12-02 10:00 in Shanghai, the default business zone (_isolated_env clears CRM_TIMEZONE).
FIXED_NOW = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)
CLOCK_SHIFT_DAYS = float(os.environ.get("CRM_TEST_CLOCK_SHIFT_DAYS") or 0)
_shifted_clock = None


def pytest_configure(config):
    """Shift the clock before collection, so module-level values see the shifted time too."""
    global _shifted_clock
    if CLOCK_SHIFT_DAYS and _shifted_clock is None:
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=CLOCK_SHIFT_DAYS)
        _shifted_clock = time_machine.travel(start, tick=True)
        _shifted_clock.start()


def pytest_unconfigure(config):
    global _shifted_clock
    if _shifted_clock is not None:
        _shifted_clock.stop()
        _shifted_clock = None


def pytest_report_header(config):
    if CLOCK_SHIFT_DAYS:
        now = dt.datetime.now(dt.UTC)
        return f"clock shifted {CLOCK_SHIFT_DAYS:g} days ahead: it is {now:%Y-%m-%d %H:%M} UTC"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's real data dir, key, user, plugin switches, time zone or desk
    server."""
    monkeypatch.setenv("CRM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_KEY)
    # Tables fit COLUMNS: the same width whether or not the run has a terminal.
    monkeypatch.setenv("COLUMNS", "120")
    # A `crm` process a test starts runs in itself, not in a desk server the developer runs
    # (tests/test_server.py starts servers of its own).
    monkeypatch.setenv("CRM_NO_SERVER", "1")
    names = ("CRM_USER", "CRM_DATABASE_URL", "CRM_DISABLE_PLUGINS", "CRM_KEY_FILE", "CRM_TIMEZONE")
    names += ("CRM_SERVER_SOCKET",)
    for name in names:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fixed_now(time_machine) -> dt.datetime:
    """FIXED_NOW, with Python's clock moved there (ticking on) for the commands the test runs:
    what they count from now (the last twelve months, what is overdue) then does not change
    with the day the tests run."""
    time_machine.move_to(FIXED_NOW, tick=True)
    return FIXED_NOW


@pytest.fixture
def fixed_now_text(fixed_now) -> str:
    """FIXED_NOW in business time, as `crm demo --now` takes it."""
    return f"{to_local(fixed_now):%Y-%m-%d %H:%M}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """An initialised SQLite file, copied for each test instead of migrating each time."""
    path = tmp_path_factory.mktemp("template") / "crm.db"
    os.environ["CRM_SECRET_KEY"] = TEST_KEY
    app = App(f"sqlite:///{path}", user=ADMIN, builtins=BUILTIN_PLUGINS)
    app.init()
    app.dispose()
    return path


@pytest.fixture(scope="session")
def pg_url():
    """A schema of this run's own on the PostgreSQL server; dropped at the end."""
    if not PG_URL:
        pytest.skip("CRM_TEST_DATABASE_URL is not set")
    schema = f"crm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # A test database need not survive a crash: commits do not wait for the disk.
    options = f"-csearch_path={schema} -csynchronous_commit=off"
    url = make_url(PG_URL).update_query_dict({"options": options})
    url_text = url.render_as_string(hide_password=False)
    os.environ["CRM_SECRET_KEY"] = TEST_KEY
    app = App(url_text, user=ADMIN, builtins=BUILTIN_PLUGINS)
    app.init()
    app.dispose()
    yield url_text
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _empty(url: str) -> None:
    """Delete every row and restart the sequences: on tables this small, DELETE takes a tenth
    of the time TRUNCATE does (which makes new files for each table)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "; ".join(f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables))
        )
        conn.exec_driver_sql(
            "SELECT setval(c.oid, 1, false) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'S' AND n.nspname = current_schema()"
        )
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, monkeypatch):
    """The database URL of this test: a fresh SQLite file, or the run's (each xdist worker's)
    PostgreSQL schema, emptied after the test."""
    if request.param == "sqlite":
        path = tmp_path / "crm.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        monkeypatch.setenv("CRM_DATABASE_URL", url)
        yield url
    else:
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("CRM_DATABASE_URL", url)
        try:
            yield url
        finally:
            _empty(url)


@pytest.fixture
def app(db_url):
    """An App on this test's database as an administrator, with the built-in plugins."""
    instance = App(db_url, user=ADMIN, builtins=BUILTIN_PLUGINS)
    instance.init()  # pins the key again after a PostgreSQL test emptied the tables
    yield instance
    instance.dispose()


@pytest.fixture
def session(app):
    with app.session() as session:
        yield session


@pytest.fixture
def run(db_url):
    """Run the `crm` CLI on this test's database: run("household", "list", as_="sales")."""
    from crm.cli import cli

    runner = CliRunner()

    def invoke(*args: str, as_: str = "测试管理员:admin", input: str | None = None):
        return runner.invoke(cli, ["--db", db_url, "--as", as_, *args], input=input)

    return invoke
