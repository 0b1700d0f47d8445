"""Card look-ups in one `crm shell` (target: 100 look-ups by phone tail under 5 s in all).

Feeds `crm shell` a script of N `household search <4-digit tail>` lines through a pipe, as an
agent would type them, and times the whole process (start-up, N look-ups, exit); then N
`household show CODE` lines; then the cost of one line once a session has started, measured
in this process; then, for comparison, a few look-ups each as a process of its own. Prints
wall and CPU seconds (the CPU figure says more on a shared machine), asserts nothing.

    python bench/shell.py [--db sqlite:///PATH] [--lookups 100] [--separate 5] [--repeat 3]

Without --db it first builds the default 3,000-household demo in a temporary folder. A given
SQLite database is copied first (its key stays where it is), because the bench raises the
hourly limit of look-ups by personal data (privacy.search_limit_per_hour, 30 by default) on
the copy to what its runs make: an agent may not otherwise make 100 of them in an hour. The
manager, who sees personal data in full, has no limit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENT = "张客服:agent"
CPU_TIMES: list[float] = []
MANAGER = "王经理:manager"


def crm_command() -> list[str]:
    crm = shutil.which("crm")
    return [crm] if crm else [sys.executable, "-m", "crm.cli"]


def cpu_of_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(args: list[str], script: str = "") -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one process (its CPU seconds go to CPU_TIMES: on a busy machine the
    wall time says more about the neighbours than about crm)."""
    cpu, start = cpu_of_children(), time.perf_counter()
    done = subprocess.run(args, input=script, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    CPU_TIMES.append(cpu_of_children() - cpu)
    return wall, done


def errors(done: subprocess.CompletedProcess) -> int:
    return sum(line.startswith("错误") for line in done.stderr.splitlines())


def session(url: str, user: str, lines: list[str], repeat: int):
    """Wall and CPU seconds of `repeat` shell sessions running `lines`, and the errors of the
    last one."""
    walls, cpus, failed = [], [], 0
    for _ in range(repeat):
        command = [*crm_command(), "--db", url, "--as", user, "shell"]
        seconds, done = timed(command, "\n".join(lines))
        walls.append(seconds)
        cpus.append(CPU_TIMES[-1])
        failed = errors(done)
    return walls, cpus, failed


def figures(label: str, run, count: int, one) -> None:
    """One line: the session's total, and per look-up once the one-line session's start-up
    is taken away."""
    walls, cpus, failed = run
    total, cpu = statistics.median(walls), statistics.median(cpus)
    each = (total - statistics.median(one[0])) / (count - 1)
    each_cpu = (cpu - statistics.median(one[1])) / (count - 1)
    print(
        f"{label}: {count} in one shell, median of {len(walls)} sessions {total:.2f} s wall "
        f"(best {min(walls):.2f}, worst {max(walls):.2f}; target < 5 s), {cpu:.2f} s CPU; "
        f"after start-up {each * 1000:.1f} ms wall, {each_cpu * 1000:.1f} ms CPU a look-up; "
        f"errors {failed}"
    )


def in_process(url: str, user: str, lines: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds a line costs once the session has started: the lines after the
    first run through crm.commands.desk in this process (the first builds the App and checks
    the schema and key), output thrown away."""
    from crm.cli import State, cli
    from crm.commands.desk import Desk

    desk = Desk(cli, State(url, user))
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            desk.run(lines[0])
            wall, cpu = time.perf_counter(), time.process_time()
            for line in lines[1:]:
                desk.run(line)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        desk.close()
    return wall / (len(lines) - 1), cpu / (len(lines) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a SQLite demo database (default: build one)")
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--lookups", type=int, default=100)
    parser.add_argument("--separate", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="crm-bench-shell-"))
    copy = work / "crm.db"
    if args.db:
        source = args.db.split(":///", 1)[-1]
        with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
    else:
        os.environ["CRM_HOME"] = str(work / "home")
        seconds, done = timed(
            [
                *crm_command(),
                "--db",
                f"sqlite:///{copy}",
                "demo",
                "--households",
                str(args.households),
            ]
        )
        if done.returncode:
            sys.exit(done.stderr)
        print(f"demo of {args.households:,} households built in {seconds:.1f} s")
    url = f"sqlite:///{copy}"
    raised = subprocess.run(
        [
            *crm_command(),
            "--db",
            url,
            "--as",
            MANAGER,
            "audit",
            "search-limit",
            str(args.lookups * (args.repeat + 2) + args.repeat + args.separate),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if raised.returncode:
        sys.exit(raised.stderr)

    rng = random.Random(12)
    tails = [f"household search {rng.randrange(10_000):04d}" for _ in range(args.lookups)]
    with sqlite3.connect(copy) as db:
        known = [code for (code,) in db.execute("SELECT code FROM households ORDER BY id")]
    codes = [f"household show {rng.choice(known)}" for _ in range(args.lookups)]
    one_search = session(url, AGENT, tails[:1], args.repeat)
    one_show = session(url, AGENT, codes[:1], args.repeat)
    print(
        "one look-up in a shell, start-up included: "
        f"search {statistics.median(one_search[0]):.2f} s wall "
        f"({statistics.median(one_search[1]):.2f} s CPU), "
        f"card {statistics.median(one_show[0]):.2f} s wall "
        f"({statistics.median(one_show[1]):.2f} s CPU)"
    )
    for label, user in (("agent, search by tail", AGENT), ("manager, search by tail", MANAGER)):
        figures(label, session(url, user, tails, args.repeat), args.lookups, one_search)
    figures("agent, card by code", session(url, AGENT, codes, args.repeat), args.lookups, one_show)

    for label, user, lines in (
        ("agent, search by tail", AGENT, tails),
        ("agent, card by code", AGENT, codes),
    ):
        wall, cpu = in_process(url, user, lines)
        print(
            f"in process ({label}): {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU a look-up "
            f"over {len(lines) - 1} after the first"
        )

    walls, cpus = [], []
    for line in tails[: args.separate]:
        walls.append(timed([*crm_command(), "--db", url, "--as", AGENT, *line.split()])[0])
        cpus.append(CPU_TIMES[-1])
    each, each_cpu = statistics.median(walls), statistics.median(cpus)
    print(
        f"as separate processes: median {each:.2f} s wall ({each_cpu:.2f} s CPU) a look-up over "
        f"{len(walls)} runs, so {args.lookups} would take about {each * args.lookups:.0f} s"
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
