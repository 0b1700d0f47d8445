"""Card look-ups in one `crm shell` (target: 100 look-ups by phone tail under 5 s in all).

Feeds `crm shell` a script of N `household search <4-digit tail>` lines through a pipe, as an
agent would type them, and times the whole process (start-up, N look-ups, exit); then N
`household show CODE` lines; then, for comparison, a few look-ups each as a process of its own.
Prints figures, asserts nothing.

    python bench/shell.py [--db sqlite:///PATH] [--lookups 100] [--separate 5] [--repeat 3]

Without --db it first builds the default 3,000-household demo in a temporary folder. A given
SQLite database is copied first (its key stays where it is), because the agent's run raises
the hourly limit of look-ups by personal data (privacy.search_limit_per_hour, 30 by default)
on the copy to what the runs make: an agent may not otherwise make 100 of them in an hour. The manager, who
sees personal data in full, has no limit.
"""

from __future__ import annotations

import argparse
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


def session(url: str, user: str, lines: list[str], repeat: int) -> tuple[list[float], int]:
    """Wall times of `repeat` shell sessions running `lines`, and the errors of the last one."""
    times, failed = [], 0
    for _ in range(repeat):
        seconds, done = timed(
            [*crm_command(), "--db", url, "--as", user, "shell"], "\n".join(lines)
        )
        times.append(seconds)
        failed = errors(done)
    return times, failed


def figures(label: str, times: list[float], count: int, one: float, failed: int) -> None:
    total = statistics.median(times)
    each = (total - one) / (count - 1) if count > 1 else total
    print(
        f"{label}: {count} in one shell, median of {len(times)} sessions {total:.2f} s in all "
        f"(best {min(times):.2f}, worst {max(times):.2f}; target < 5 s); "
        f"{each * 1000:.1f} ms a look-up after start-up; errors {failed}"
    )


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
            str(args.lookups * (args.repeat + 1)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if raised.returncode:
        sys.exit(raised.stderr)

    rng = random.Random(12)
    tails = [f"household search {rng.randrange(10_000):04d}" for _ in range(args.lookups)]
    codes = [f"household show H{rng.randint(1, 3000):06d}" for _ in range(args.lookups)]
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
