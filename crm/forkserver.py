"""The desk server (`crm server start`): imports crm once and forks a copy of itself for each
command that `crm` (crm.launch) hands it.

The server imports the command modules, SQLAlchemy, both database drivers and every plugin's
models, configures the mappers and then waits on its socket. For each command it forks: the copy
takes the caller's standard input, output and error, working directory, umask and environment,
runs the command exactly as `crm.cli.main` would and reports the exit code; the server itself
never opens a database. Heavy numerical libraries (numpy, scikit-learn, matplotlib) are not
imported here: they start threads, which do not survive a fork, and load in the commands that
compute with them as they do without a server.

The server answers "local" instead, and the command runs in the caller, when crm's code or the
installed packages changed since it started (it then stops: `crm server start` again), or when
the caller disables another set of plugins (CRM_DISABLE_PLUGINS) than the server loaded. It
stops by itself after `idle` seconds without a command, and on SIGTERM (`crm server stop`).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from crm.launch import private_folder, socket_path

DRIVERS = ("sqlalchemy.dialects.sqlite.pysqlite", "sqlalchemy.dialects.postgresql.psycopg")


def lock_path(path: str) -> str:
    """The file a running server holds locked and in which it writes its process id."""
    return path + ".pid"


def log_path(path: str) -> str:
    return path + ".log"


def running(path: str) -> tuple[int, int] | None:
    """(process id, commands run so far) of the server on `path`, or None when no server
    holds its lock file."""
    try:
        with open(lock_path(path), "r+") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, served = (held.read().split() + ["0", "0"])[:2]
                return int(pid), int(served)
            fcntl.flock(held, fcntl.LOCK_UN)
            return None
    except (FileNotFoundError, ValueError):
        return None


def running_pid(path: str) -> int | None:
    """The process id of the server on `path`, or None."""
    found = running(path)
    return found[0] if found else None


def preload() -> None:
    """Import what everyday commands import, so the forked copies start with it."""
    import importlib

    from sqlalchemy.orm import configure_mappers

    from crm.cli import cli, plugin_manager
    from crm.core import app  # noqa: F401  (the App and everything it imports)

    cli.commands  # noqa: B018  (loads every command module)
    for plugin in plugin_manager().get_plugins():
        package = getattr(plugin, "__name__", "")
        try:
            importlib.import_module(f"{package}.models")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.models":
                raise
    for driver in DRIVERS:
        importlib.import_module(driver)
    import psycopg  # noqa: F401

    configure_mappers()


def code_fingerprint() -> tuple:
    """What changes when crm's code or the installed packages change: the modification times
    of crm's source files and of every folder on the import path."""
    import crm

    root = Path(crm.__file__).parent
    stamps = [(str(p), p.stat().st_mtime_ns) for p in sorted(root.rglob("*.py"))]
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry).st_mtime_ns))
        except OSError:
            continue
    return tuple(stamps)


def serve(path: str, idle_seconds: float) -> None:
    """Run the server on `path` until idle for `idle_seconds` or sent SIGTERM."""
    if not private_folder(path, create=True):
        raise SystemExit(f"错误：{os.path.dirname(path)} 不是仅当前用户可用的文件夹，未启动。")
    held = open(lock_path(path), "a+")  # noqa: SIM115  (held, and so locked, until the end)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("错误：工作台服务已在运行。") from None
    preload()
    server = DeskServer(path, held)
    try:
        server.listen()
        _log(f"已启动，进程 {os.getpid()}，套接字 {path}")
        import gc

        gc.collect()
        gc.freeze()  # what start-up made lives as long as the server: no copy collects it
        server.run(idle_seconds)
    finally:
        server.close()


class DeskServer:
    """The listening socket and what each request is checked against."""

    def __init__(self, path: str, held) -> None:
        self.path = path
        self.held = held
        self.fingerprint = code_fingerprint()
        self.plugins_off = os.environ.get("CRM_DISABLE_PLUGINS", "")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.served = 0

    def listen(self) -> None:
        Path(self.path).unlink(missing_ok=True)  # left by a server that was killed
        self.listener.bind(self.path)
        os.chmod(self.path, 0o600)
        self.listener.listen(16)
        self.record()
        # Forked copies that ended are reaped by the system; SIGTERM ends `run`.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _stop)

    def run(self, idle_seconds: float) -> None:
        self.listener.settimeout(idle_seconds)
        try:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    _log("空闲超时，已停止")
                    return
                with conn:
                    if not self.answer(conn):
                        return
        except _Stopped:
            _log("收到停止信号，已停止")

    def answer(self, conn: socket.socket) -> bool:
        """Fork a copy to run the command on `conn`, or tell the caller to run it itself;
        False when the server must stop (its code is out of date)."""
        if not _same_user(conn):
            return True
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError, KeyError) as exc:
            _log(f"无法读取的请求，已忽略：{exc!r}")
            return True
        if code_fingerprint() != self.fingerprint:
            conn.sendall(b"local code-changed\n")
            _close(fds)
            _log("程序或安装的软件包已更新，已停止（请重新运行 crm server start）")
            return False
        if request["env"].get("CRM_DISABLE_PLUGINS", "") != self.plugins_off:
            conn.sendall(b"local plugins\n")
            _close(fds)
            return True
        if os.fork() == 0:
            self.listener.close()
            self.held.close()
            _run_child(conn, request, fds)  # never returns
        _close(fds)
        self.served += 1
        self.record()
        return True

    def record(self) -> None:
        """The lock file says which process serves and how many commands it has run."""
        self.held.seek(0)
        self.held.truncate()
        self.held.write(f"{os.getpid()} {self.served}\n")
        self.held.flush()

    def close(self) -> None:
        self.listener.close()
        Path(self.path).unlink(missing_ok=True)
        self.held.close()


class _Stopped(Exception):
    pass


def _stop(_signum, _frame) -> None:
    raise _Stopped


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} 工作台服务：{message}", flush=True)


def _same_user(conn: socket.socket) -> bool:
    """Only this user's processes may hand commands over (the folder already keeps others out;
    this checks the connecting process itself where the system tells)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, 12))
    return uid == os.getuid()


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    if len(data) < 4:
        raise ConnectionError("incomplete request")
    size = int.from_bytes(data[:4], "big")
    body = bytearray(data[4:])
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            raise ConnectionError("incomplete request")
        body += more
    return json.loads(body), list(fds)


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _run_child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked copy: become the caller's process and run its command."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # commands wait for their subprocesses
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        _close(fds)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        _reopen_standard_streams(request.get("encoding") or "utf-8")
        _hidden_input_from_stdin()
        conn.sendall(f"pid {os.getpid()}\n".encode())
        code = _run_command(request["argv"])
    except BaseException:  # noqa: BLE001  (whatever happened, the caller gets an exit code)
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110  (the caller may have closed its end)
                pass
        try:
            conn.sendall(f"exit {code}\n".encode())
        finally:
            os._exit(code)


def _reopen_standard_streams(encoding: str) -> None:
    """sys.stdin/stdout/stderr on the caller's descriptors, buffered as Python buffers them
    for a terminal or a pipe."""
    line = 1 if os.isatty(1) else -1
    sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", line, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", 1, encoding=encoding, errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _hidden_input_from_stdin() -> None:
    """Passwords (click.prompt(hide_input=True)) read with echo off from the caller's terminal:
    getpass opens /dev/tty, which a forked copy of the server does not have."""
    import getpass

    def hidden(prompt: str = "Password: ", stream=None) -> str:
        if not os.isatty(0):
            return getpass.fallback_getpass(prompt, stream)
        import termios

        old = termios.tcgetattr(0)
        quiet = list(old)
        quiet[3] &= ~termios.ECHO
        try:
            termios.tcsetattr(0, termios.TCSAFLUSH, quiet)
            sys.stderr.write(prompt)
            sys.stderr.flush()
            line = sys.stdin.readline()
        finally:
            termios.tcsetattr(0, termios.TCSAFLUSH, old)
            sys.stderr.write("\n")
        if not line:
            raise EOFError
        return line.rstrip("\n")

    getpass.getpass = hidden


def _run_command(argv: list[str]) -> int:
    from crm.cli import main
    from crm.commands.desk import exit_status

    sys.argv = ["crm", *argv]
    try:
        main(argv)
    except SystemExit as exc:
        return exit_status(exc.code)
    return 0


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="crm 工作台服务（由 crm server start 启动）")
    parser.add_argument("--idle-hours", type=float, required=True)
    args = parser.parse_args()
    serve(socket_path(), args.idle_hours * 3600)


if __name__ == "__main__":
    main()
