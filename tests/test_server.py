"""The desk server (`crm server`, crm.forkserver) runs a command as `crm` would run it
itself: same output, errors and exit code, on both databases; it steps aside (the command runs
in the caller) when its code is out of date or the caller disables other plugins, and passes
Ctrl-C on to the command. Timings are in bench/desk.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from crm.forkserver import running
from crm.launch import LOCAL_COMMANDS, command_word

CRM = [sys.executable, "-c", "from crm.launch import main; main()"]


def crm(
    env: dict[str, str], *args: str, served: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """`crm ARGS…` as its own process: handed to the server, or (served=False) run itself."""
    env = dict(env)
    if not served:
        env["CRM_NO_SERVER"] = "1"
    return subprocess.run(
        [*CRM, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def start_server(db_url: str, tmp_path: Path):
    """A desk server of the test's own, on a socket in a private folder (short enough for a
    socket's path): the environment that hands commands to it and a folder on the server's
    import path (a file added there is a package installed after the server started)."""
    folder = Path(tempfile.mkdtemp(prefix="crm-srv-"))
    folder.chmod(0o700)
    extra = tmp_path / "path"
    extra.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CRM_NO_SERVER"}
    env.update(
        CRM_SERVER_SOCKET=str(folder / "desk.sock"),
        CRM_DATABASE_URL=db_url,
        CRM_USER="测试管理员:admin",
        PYTHONPATH=str(extra),
    )
    (tmp_path / "start").mkdir()  # where the user was when starting it
    started = crm(env, "server", "start", "--idle-hours", "0.5", cwd=tmp_path / "start")
    assert started.returncode == 0, started.stderr
    yield env, extra
    crm(env, "server", "stop")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server(db_url, tmp_path):
    """A server, for commands on this test's database (SQLite and PostgreSQL)."""
    yield from start_server(db_url, tmp_path)


@pytest.fixture
def sqlite_server(sqlite_template, tmp_path):
    """A server, for what does not depend on the database: a copy of the SQLite template."""
    path = tmp_path / "crm.db"
    shutil.copy(sqlite_template, path)
    yield from start_server(f"sqlite:///{path}", tmp_path)


def served(env: dict[str, str]) -> int:
    found = running(env["CRM_SERVER_SOCKET"])
    assert found is not None, "the server is not running"
    return found[1]


def test_a_served_command_prints_and_ends_as_the_same_command_run_itself(server):
    env, _ = server
    added = crm(
        env,
        "household",
        "add",
        "H1",
        "--name",
        "王芳家",
        "--owner-name",
        "王芳",
        "--phone",
        "13812345678",
    )
    assert added.returncode == 0, added.stderr
    commands = [
        ("household", "show", "H1"),
        ("household", "search", "5678"),
        ("household", "list", "--format", "json"),
        ("household", "show", "NOPE"),  # a CrmError: exit 4 and one line on stderr
        ("ticket", "list", "--bogus"),  # click's own error, in Chinese: exit 2
        ("--help",),
    ]
    before = served(env)
    for args in commands:
        there, here = crm(env, *args), crm(env, *args, served=False)
        assert (there.returncode, there.stdout, there.stderr) == (
            here.returncode,
            here.stdout,
            here.stderr,
        ), args
        assert "Traceback" not in there.stderr
    assert served(env) - before == len(commands)


def test_a_server_with_other_code_or_plugins_lets_the_command_run_in_the_caller(sqlite_server):
    env, extra = sqlite_server
    before = served(env)
    off = crm({**env, "CRM_DISABLE_PLUGINS": "campaigns"}, "household", "list")
    assert off.returncode == 0 and served(env) == before
    # An installed package changes: the server answers "run it yourself" and stops.
    (extra / "newly_installed.py").write_text("")
    changed = crm(env, "household", "list", "--format", "json")
    assert changed.returncode == 0 and changed.stdout.strip() == "[]"
    for _ in range(100):
        if running(env["CRM_SERVER_SOCKET"]) is None:
            break
        time.sleep(0.05)
    assert running(env["CRM_SERVER_SOCKET"]) is None
    assert not Path(env["CRM_SERVER_SOCKET"]).exists()
    assert "未在运行" in crm(env, "server", "status").stdout


def test_files_written_where_the_server_was_started_leave_it_serving(sqlite_server, tmp_path):
    """A served command writes into the caller's folder, here the one `start` ran in: that is
    no package being installed, and does not stop the server."""
    env, _ = sqlite_server
    before = served(env)
    exported = crm(env, "export", "households", "-o", "h.csv", cwd=tmp_path / "start")
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "start" / "h.csv").exists()
    assert crm(env, "household", "list").returncode == 0
    assert served(env) - before == 2


def test_ctrl_c_reaches_the_served_command(sqlite_server, tmp_path):
    env, _ = sqlite_server
    target = {**env, "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    before = served(env)
    demo = subprocess.Popen(
        [*CRM, "demo", "--households", "3000", "--seed", "1"],
        env=target,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(200):  # until the server has forked the command's copy
        if served(env) > before:
            break
        time.sleep(0.02)
    time.sleep(0.5)
    demo.send_signal(signal.SIGINT)
    _out, err = demo.communicate(timeout=60)
    assert demo.returncode == 130, err
    assert "已中断" in err and "Traceback" not in err


def test_a_server_folder_others_may_enter_is_not_used(sqlite_server):
    env, _ = sqlite_server
    folder = Path(env["CRM_SERVER_SOCKET"]).parent
    before = served(env)
    folder.chmod(0o755)
    try:
        listed = crm(env, "household", "list", "--format", "json")
    finally:
        folder.chmod(0o700)
    assert listed.returncode == 0 and served(env) == before


def test_the_session_and_scheduler_always_run_in_their_own_process():
    assert command_word(["--as", "王芳:agent", "--db", "sqlite:///x.db", "shell"]) == "shell"
    assert command_word(["-h"]) is None
    assert {"shell", "desk", "scheduler", "server"} <= LOCAL_COMMANDS


def test_the_console_command_imports_only_the_standard_library_before_handing_over():
    """What `crm` loads before it knows whether a server will run the command: Python's own
    modules and crm.launch (pluggy, click and SQLAlchemy would cost most of what it saves)."""
    probe = (
        "import sys; before = set(sys.modules); import crm.launch; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names and name not in ("crm", "crm.launch")
    ]
    assert "crm.launch" in loaded and outside == []


def test_without_fork_the_server_commands_say_so_in_one_sentence(monkeypatch):
    from click.testing import CliRunner

    from crm.cli import cli

    monkeypatch.delattr(os, "fork")
    for action in ("start", "stop", "status"):
        result = CliRunner().invoke(cli, ["server", action])
        assert result.exit_code != 0 and "复制进程" in result.output, result.output
        assert "Traceback" not in result.output
