"""Start-up of the everyday desk commands, timed as whole processes (issue 12).

    python bench/desk.py [--households 3000] [--runs 7] [--fresh] [--dir DIR] [--instructions]

Builds a demo portfolio (`crm demo --households N --seed 2026 --now '2026-12-01 09:00'`) in a
SQLite file in the temporary folder, or reuses the one an earlier run built there (--fresh
builds it again), then runs each command of a fixed list as its own `crm` process, twice: once
on its own ("cold": CRM_NO_SERVER=1, what a command costs when no desk server runs) and once
handed to a desk server the benchmark starts for itself (`crm server start`, socket in the
benchmark's folder; "served"). One warm-up round, then `--runs` rounds, each round running every
command once each way (so a change in the machine's load touches all of them alike). `ticket
open` registers a new complaint every round and `ticket step` confirms the one that round
opened: both write. The commands run as the default user (an agent); the demo's hourly limit of
look-ups by phone is raised so that every round searches by tail as the first did. Prints, per
command and way, the median wall time and the ratio of it to the median wall time of the
baseline, `python -c "import sqlalchemy.orm"`, and checks from the server's own count that
every served run was served.

Targets: every command that reads or writes a few rows at most 0.35 s wall median and at most
1.5x the baseline; `crm --help` under 0.2 s. The load average is printed before and after: the
machine is shared, and figures taken under load are slower for every line, baseline included.
`--instructions` runs each command once more under valgrind's callgrind (cold) and prints the
instructions it executed instead: slow, but a figure the machine's load does not move.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

SEED = 2026
NOW = "2026-12-01 09:00"
WALL_TARGET = 0.35
RATIO_TARGET = 1.5
HELP_TARGET = 0.2
BASELINE = "import sqlalchemy.orm"
# Variables that must not reach the benchmark's processes: the caller's own crm settings, and
# PYTHONDONTWRITEBYTECODE, which would make every run compile crm's modules from source again
# (an installed crm has its bytecode: pip compiles it; an editable one writes it on first use).
FOREIGN_VARIABLES = (
    "CRM_USER",
    "CRM_SECRET_KEY",
    "CRM_KEY_FILE",
    "CRM_DISABLE_PLUGINS",
    "PYTHONDONTWRITEBYTECODE",
)


@dataclass
class Timed:
    label: str
    walls: list[float] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)


def crm_command() -> list[str]:
    """The `crm` console script beside this Python (as a user runs it), else `-m crm`."""
    script = Path(sys.executable).with_name("crm")
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from crm.cli import main; main()"]
    )


def run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run one process to its end: (wall seconds, stdout); a failure stops the benchmark,
    since a command that failed did not do the work being timed. Wall time only: a served
    command's work is done in the server's forked copy, which this process's CPU time does
    not count."""
    start = time.perf_counter()
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return wall, done.stdout


def prepare(folder: Path, households: int, fresh: bool, env: dict[str, str]) -> None:
    """The demo in `folder` (its key there too), built unless an earlier run left it ready;
    a reused one is brought to this crm's schema first."""
    crm = crm_command()
    ready = folder / "ready"
    if fresh or not ready.exists():
        for name in ("demo.db", "demo.db-wal", "demo.db-shm", "secret.key", "ready"):
            (folder / name).unlink(missing_ok=True)
        print(f"building the demo ({households:,} households) in {folder} …", flush=True)
        start = time.perf_counter()
        demo = ["demo", "--households", str(households), "--seed", str(SEED), "--now", NOW]
        run([*crm, *demo], env)
        print(f"  built in {time.perf_counter() - start:.1f} s")
        ready.write_text(f"{households} {SEED} {NOW}\n")
    else:
        print(f"reusing the demo in {folder} (--fresh to rebuild)")
        run([*crm, "db", "upgrade"], env)
    # The commands run as an agent, whose look-ups by phone tail stop at the hourly limit (30
    # by default): raised on this throw-away demo so every run does the same work.
    run([*crm, "--as", "基准:admin", "audit", "search-limit", "100000"], env)


def pick(database: Path) -> dict[str, str]:
    """What the commands look up, read from the demo file itself: the first household's code,
    its owner's name and phone tail (尾号), and the first ticket's number."""
    with closing(sqlite3.connect(database)) as conn:
        owner = conn.execute(
            "SELECT h.code, m.name, m.phone_tail FROM households h JOIN members m "
            "ON m.household_id = h.id WHERE m.role = 'owner' AND m.phone_tail IS NOT NULL "
            "ORDER BY h.code, m.id LIMIT 1"
        ).fetchone()
        ticket = conn.execute("SELECT number FROM svc_tickets ORDER BY id LIMIT 1").fetchone()
    if owner is None or ticket is None:
        raise SystemExit("the demo has no owner with a phone or no ticket: rebuild it (--fresh)")
    return {"code": owner[0], "name": owner[1], "tail": owner[2], "ticket": ticket[0]}


def instructions(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run one process under callgrind: (instructions executed, stdout). The count does not
    depend on what else the machine is doing, unlike any time."""
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", *command],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    collected = [line for line in done.stderr.splitlines() if "Collected :" in line]
    return int(collected[-1].rsplit(":", 1)[1]), done.stdout


def start_server(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """A desk server of the benchmark's own (its socket in a private folder beside the demo):
    the environment that hands commands to it."""
    private = folder / "server"
    private.mkdir(exist_ok=True)
    private.chmod(0o700)
    served = {**env, "CRM_SERVER_SOCKET": str(private / "desk.sock")}
    served.pop("CRM_NO_SERVER", None)
    run([*crm_command(), "server", "stop"], served)  # one a killed run may have left
    run([*crm_command(), "server", "start", "--idle-hours", "1"], served)
    return served


def served_count(env: dict[str, str]) -> int:
    from crm.forkserver import running

    found = running(env["CRM_SERVER_SOCKET"])
    if found is None:
        raise SystemExit("the desk server stopped during the benchmark")
    return found[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--fresh", action="store_true", help="rebuild the demo even if present")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count each command's instructions once under valgrind instead of timing it "
        "(slow, but the same on a loaded machine as on an idle one)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "crm-bench-desk",
        help="folder of the demo database and its key (kept for the next run)",
    )
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    folder = args.dir / f"h{args.households}"
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    env.update(CRM_HOME=str(folder), CRM_DATABASE_URL=f"sqlite:///{folder / 'demo.db'}")
    cold_env = {**env, "CRM_NO_SERVER": "1"}

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    prepare(folder, args.households, args.fresh, cold_env)
    found = pick(folder / "demo.db")
    crm = crm_command()
    reads = {
        "crm --help": ["--help"],
        "household show CODE": ["household", "show", found["code"]],
        "household search TAIL": ["household", "search", found["tail"]],
        "household search NAME": ["household", "search", found["name"]],
        "ticket show NO": ["ticket", "show", found["ticket"]],
        "ticket list": ["ticket", "list"],
        "workorder list": ["workorder", "list"],
        "revisit due": ["revisit", "due", "--month", "2027-01"],
    }
    labels = [*reads, "ticket open (write)", "ticket step (write)"]
    baseline = Timed(f'python -c "{BASELINE}"')
    ways = {"cold": cold_env}
    if not args.instructions:
        ways["served"] = start_server(folder, env)
    timed = {(label, way): Timed(label) for label in labels for way in ways}
    open_args = ["ticket", "open", found["code"], "--type", "complaint", "--channel", "phone"]
    open_args += ["--summary", "基准：单元门禁刷卡无反应", "--format", "json"]
    counts: dict[str, int] = {}

    def measure(target: Timed, command: list[str], way_env, keep: bool, count: bool) -> str:
        if count:
            counts[target.label], out = instructions(command, way_env)
            return out
        wall, out = run(command, way_env)
        if keep:
            target.walls.append(wall)
        return out

    def one_round(keep: bool, count: bool = False) -> None:
        measure(baseline, [sys.executable, "-c", BASELINE], env, keep, count)
        for way, way_env in ways.items():
            for label, argv in reads.items():
                measure(timed[label, way], [*crm, *argv], way_env, keep, count)
            opened = measure(timed[labels[-2], way], [*crm, *open_args], way_env, keep, count)
            number = json.loads(opened)["number"]
            step = [*crm, "ticket", "step", number, "confirm"]
            measure(timed[labels[-1], way], step, way_env, keep, count)

    try:
        one_round(keep=False)  # warm-up: the page cache, .pyc files, the database file
        if args.instructions:
            one_round(keep=False, count=True)
            report_instructions(counts, baseline.label)
            return
        before = served_count(ways["served"])
        for _ in range(args.runs):
            one_round(keep=True)
        served = served_count(ways["served"]) - before
    finally:
        if "served" in ways:
            run([*crm, "server", "stop"], ways["served"])
    load_after = os.getloadavg()
    if served != args.runs * len(labels):
        raise SystemExit(f"the server ran {served} of {args.runs * len(labels)} served commands")

    base = baseline.wall
    print(
        f"\n{args.households:,} households; median of {args.runs} runs after a warm-up; "
        f"targets ≤ {WALL_TARGET} s and ≤ {RATIO_TARGET}x the baseline, --help < {HELP_TARGET} s;"
        f"\nthe server ran all {served} served commands"
    )
    print(f"{'':<26} {'cold (no server)':>20}   {'served (crm server)':>20}")
    print(
        f"{'command':<26} {'wall s':>9} {'ratio':>6} {'target':>4}   {'wall s':>9} {'ratio':>6}  target"
    )
    print(f"{baseline.label:<26} {base:>9.3f} {1:>6.2f}  (baseline)")
    missed = {way: 0 for way in ways}
    for label in labels:
        cells = []
        for way in ways:
            wall = timed[label, way].wall
            if label == "crm --help":
                over = [] if wall < HELP_TARGET else [f"≥ {HELP_TARGET} s"]
            else:
                over = [f"> {WALL_TARGET} s"] if wall > WALL_TARGET else []
                over += [f"> {RATIO_TARGET}x"] if wall > RATIO_TARGET * base else []
            missed[way] += bool(over)
            verdict = "MISSED " + ", ".join(over) if over else "met"
            cells.append(f"{wall:>9.3f} {wall / base:>6.2f}  {verdict:<20}")
        print(f"{label:<26} {''.join(cells)}")
    print(
        f"\nload average after: {' '.join(f'{x:.2f}' for x in load_after)}; "
        + "; ".join(f"missed {way}: {count}" for way, count in missed.items())
    )


def report_instructions(counts: dict[str, int], baseline: str) -> None:
    base = counts[baseline]
    print(f"\ninstructions executed (valgrind callgrind), ratio to the baseline ≤ {RATIO_TARGET}")
    print(f"{'command':<34} {'millions':>9} {'ratio':>6}")
    for label, count in counts.items():
        mark = (
            ""
            if label in (baseline, "crm --help")
            else ("  met" if count <= RATIO_TARGET * base else "  MISSED")
        )
        print(f"{label:<34} {count / 1e6:>9,.0f} {count / base:>6.2f}{mark}")


if __name__ == "__main__":
    main()
