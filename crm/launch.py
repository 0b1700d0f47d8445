"""The `crm` console command: hands the command to the desk server when one is running, else
runs it in this process.

Starting Python, SQLAlchemy and the plugins' models costs a command about half a second on the
2-core machine before it reads a row. `crm server start` keeps one process that has done that
once (crm.forkserver); this module, which imports only the standard library, connects to
it, passes it the command line, the environment, the working directory and this process's
standard input, output and error (the file descriptors themselves, so the command reads the
same terminal or pipe and writes where this one would), and waits for the exit code. Ctrl-C and
the other stop signals are passed on to the process running the command. This is how
Mercurial's chg and Emacs' server cut their start-up.

With no server (or CRM_NO_SERVER set) the command runs here exactly as before. The server runs
it as the same operating-system user, with this process's environment (CRM_USER,
CRM_DATABASE_URL, CRM_HOME …), so it sees and may do what this process would.
"""

from __future__ import annotations

import os
import sys

# Never handed over: the desk session and the scheduler run for hours in their own process
# (their terminal and signals are their own), and `server` manages the server itself.
LOCAL_COMMANDS = frozenset({"shell", "desk", "scheduler", "server"})
# The root options that take a value (the command is the first word after them).
ROOT_VALUE_OPTIONS = frozenset({"--db", "--as"})
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def socket_path() -> str:
    """The server's socket for this installation of crm and this user: CRM_SERVER_SOCKET,
    else a file in a folder only this user may enter (checked by `private_folder`)."""
    given = os.environ.get("CRM_SERVER_SOCKET")
    if given:
        return given
    import zlib

    # One server per Python environment and copy of crm: another virtual environment has other
    # code and so its own server.
    install = f"{sys.prefix}\0{os.path.dirname(os.path.abspath(__file__))}".encode()
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"crm-{os.getuid()}", f"desk-{zlib.crc32(install):08x}.sock")


def private_folder(path: str, create: bool = False) -> bool:
    """Whether the folder of `path` is a real folder owned by this user that nobody else may
    enter (made so when `create`): the socket's only protection against other users."""
    import stat

    folder = os.path.dirname(path) or "."
    if create:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    )


def command_word(argv: list[str]) -> str | None:
    """The top-level command in `argv` (after the root options), or None."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in ROOT_VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def hand_over(argv: list[str]) -> int | None:
    """Run `argv` in the desk server: its exit code, or None when there is no server or it
    asks for the command to run here (nothing has been run or written then)."""
    if os.environ.get("CRM_NO_SERVER") or command_word(argv) in LOCAL_COMMANDS:
        return None
    if not hasattr(os, "fork"):
        return None
    import socket

    path = socket_path()
    if not os.path.exists(path) or not private_folder(path):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        _send_request(conn, argv)
        replies = conn.makefile("r", encoding="utf-8")
        first = replies.readline().split()
    except OSError:
        conn.close()
        return None
    if first[:1] == ["pid"]:
        return _wait(int(first[1]), replies)
    conn.close()
    if first[:1] == ["exit"]:  # the server's copy failed before it could run the command
        return int(first[1])
    return None  # "local": the server asks for the command to run here


def _send_request(conn, argv: list[str]) -> None:
    import json
    import socket

    mask = os.umask(0)
    os.umask(mask)
    request = json.dumps(
        {
            "argv": argv,
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "umask": mask,
            "encoding": sys.stdout.encoding if sys.stdout else "utf-8",
        }
    ).encode()
    message = len(request).to_bytes(4, "big") + request
    sent = socket.send_fds(conn, [message], [0, 1, 2])
    conn.sendall(message[sent:])


def _wait(pid: int, replies) -> int:
    """Pass stop signals on to the command's process until it reports its exit code."""
    import signal

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for name in FORWARDED_SIGNALS:
        signal.signal(getattr(signal, name), forward)
    while True:
        try:
            line = replies.readline()
        except InterruptedError:
            continue
        if not line:
            sys.stderr.write("错误：工作台服务中运行命令的进程意外结束。\n")
            return 1
        word, _, value = line.partition(" ")
        if word == "exit":
            return int(value)


def main() -> None:
    code = hand_over(sys.argv[1:])
    if code is None:
        from crm.cli import main as run_here

        run_here()
        return
    sys.exit(code)
