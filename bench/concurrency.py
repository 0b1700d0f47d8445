"""Six `crm` processes at once on one database (targets: 1 run per campaign, 0 tracebacks).

On a demo database, on SQLite and on PostgreSQL, each trial starts PROCESSES real processes
together:
- `crm campaign run CODE` of one new campaign: how many runs the campaign got (target 1);
- `crm coordinate run` after fresh pending warnings were stored and the stored lifetime values
  removed (as on the first morning: the first assessment scores the whole portfolio): the
  scorings made (target 1), duplicate value and decision rows (target 0), decisions left
  unfinished (target 0).
Every trial counts the tracebacks and failed exits of its processes (target 0).

PostgreSQL comes from CRM_TEST_DATABASE_URL (or postgresql+psycopg://postgres@127.0.0.1:5432/test)
in a schema of its own, dropped at the end; --no-postgres skips it.

    python bench/concurrency.py [--households 1000] [--trials 4] [--processes 6] [--feedback 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CRM = [sys.executable, "-c", "from crm.cli import main; main()"]


def crm(url: str, *args: str, as_: str = "压测管理员:admin") -> list[str]:
    return [*CRM, "--db", url, "--as", as_, *args]


def together(commands: list[list[str]], env: dict) -> list[tuple[int, str]]:
    """Start every command at once; (exit code, stderr) of each."""
    started = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    return [(p.wait(), p.stderr.read()) for p in started]


def failures(outcomes: list[tuple[int, str]]) -> tuple[int, int, str]:
    """(tracebacks, failed exits, the first traceback's last line)."""
    tracebacks = [err for _, err in outcomes if "Traceback" in err]
    failed = sum(1 for code, _ in outcomes if code != 0)
    # The exception's own line: the last that names an error (SQLAlchemy adds a link after it).
    named = [line for line in "".join(tracebacks).splitlines() if "Error" in line]
    last = named[-1].strip()[:160] if named else ""
    return len(tracebacks), failed, last


def setup(url: str, env: dict, *args: str) -> None:
    """Run one `crm` command as the administrator; stop the bench if it fails."""
    result = subprocess.run(crm(url, *args), env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"setup failed: crm {' '.join(args)}\n{result.stderr}")


def bench(name: str, url: str, args, env: dict) -> dict:
    engine = create_engine(url)
    started = time.perf_counter()
    setup(url, env, "demo", "--households", str(args.households))
    print(f"{name}: demo of {args.households} households in {time.perf_counter() - started:.1f} s")
    totals = {"runs": [], "tracebacks": 0, "failed": 0, "scorings": [], "duplicates": 0}
    for trial in range(1, args.trials + 1):
        code = f"BENCH{trial}"
        setup(
            url, env, "campaign", "create", code, "--name", "压测活动", "--kind", "一路同行",
            "--channel", "短信", "--template", "{家庭}您好",
        )  # fmt: skip
        outcomes = together(
            [
                crm(url, "campaign", "run", code, as_=f"外呼{i}:manager")
                for i in range(args.processes)
            ],
            env,
        )
        with engine.connect() as conn:
            runs = conn.scalar(
                text(
                    "SELECT count(*) FROM camp_runs r JOIN camp_campaigns c ON c.id = r.campaign_id"
                    " WHERE c.code = :code"
                ),
                {"code": code},
            )
        tracebacks, failed, last = failures(outcomes)
        totals["runs"].append(runs)
        totals["tracebacks"] += tracebacks
        totals["failed"] += failed
        print(
            f"  trial {trial} campaign run ×{args.processes}: runs {runs}, tracebacks {tracebacks},"
            f" failed exits {failed} {last}"
        )

        # Fresh pending warnings and no stored lifetime values, then the cycles.
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM prof_household_values"))
            conn.execute(text("DELETE FROM prof_runs"))
            households = conn.scalars(
                text("SELECT id FROM households ORDER BY id LIMIT :n"), {"n": args.feedback}
            ).all()
            conn.execute(
                text(
                    "INSERT INTO sat_feedback (key, kind, household_id, reason, strength, status,"
                    " detected_at) VALUES (:key, 'repeat_complaint', :hid, '三个月内两次投诉',"
                    " :strength, 'pending', CURRENT_TIMESTAMP)"
                ),
                [
                    {"key": f"bench:{trial}:{hid}", "hid": hid, "strength": 0.5 + i / 1000}
                    for i, hid in enumerate(households)
                ],
            )
        outcomes = together(
            [
                crm(url, "coordinate", "run", "--batch-size", "5", as_=f"调度{i}:manager")
                for i in range(args.processes)
            ],
            env,
        )
        with engine.connect() as conn:
            scorings = conn.scalar(text("SELECT count(*) FROM prof_runs"))
            duplicates = conn.scalar(
                text("SELECT count(*) - count(DISTINCT household_id) FROM prof_household_values")
            ) + conn.scalar(
                text("SELECT count(*) - count(DISTINCT feedback_id) FROM coord_decisions")
            )
            unfinished = conn.scalar(
                text(
                    "SELECT count(*) FROM coord_decisions WHERE status IN ('collected', 'assessed')"
                )
            )
            pending = conn.scalar(
                text("SELECT count(*) FROM sat_feedback WHERE status = 'pending'")
            )
        tracebacks, failed, last = failures(outcomes)
        totals["scorings"].append(scorings)
        totals["duplicates"] += duplicates
        totals["tracebacks"] += tracebacks
        totals["failed"] += failed
        print(
            f"  trial {trial} coordinate run ×{args.processes}: scorings {scorings}, duplicate rows"
            f" {duplicates}, decisions unfinished {unfinished}, feedback still pending {pending},"
            f" tracebacks {tracebacks}, failed exits {failed} {last}"
        )
    engine.dispose()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--feedback", type=int, default=60)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="crm-bench-conc-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_HOME"] = str(home)  # the demo makes the key here, for both databases
    backends = [("SQLite", f"sqlite:///{home / 'crm.db'}")]
    pg_admin, schema = None, f"bench_conc_{uuid.uuid4().hex[:10]}"
    if not args.no_postgres:
        base = os.environ.get("CRM_TEST_DATABASE_URL") or PG_DEFAULT
        pg_admin = create_engine(base)
        with pg_admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        backends.append(("PostgreSQL", url.render_as_string(hide_password=False)))
    results = {}
    try:
        for name, url in backends:
            results[name] = bench(name, url, args, env)
    finally:
        if pg_admin is not None:
            with pg_admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            pg_admin.dispose()
        shutil.rmtree(home, ignore_errors=True)
    print(f"\n{args.processes} processes at once, {args.trials} trials per backend:")
    for name, totals in results.items():
        print(
            f"  {name:<10} runs per campaign {totals['runs']} (target 1 each), scorings per"
            f" first assessment {totals['scorings']} (target 1 each), duplicate rows"
            f" {totals['duplicates']}, tracebacks {totals['tracebacks']} (target 0), failed exits"
            f" {totals['failed']}"
        )


if __name__ == "__main__":
    main()
