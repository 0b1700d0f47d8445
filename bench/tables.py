"""How wide the listing commands' tables are on the demo, at a given terminal width.

Builds the default demo (3,000 households, `--now 2026-12-02 10:00`) in a temporary SQLite
file unless --db names one that already holds it, lets the satisfaction warnings and one
coordination round run (so the coordination log has rows), then runs every listing command as a
manager with COLUMNS set, and prints, widest first, each command's widest output line in
terminal columns (a Chinese character counts two), its line count and the columns it left out.

    python bench/tables.py [--width 120] [--households 3000] [--db URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner
from wcwidth import wcswidth

MANAGER = "王经理:manager"


def width(line: str) -> int:
    measured = wcswidth(line)
    return measured if measured >= 0 else len(line)


def listing_commands(run) -> list[list[str]]:
    """Every read-only command that prints a table or a record, with arguments from the demo."""

    def first(args: list[str], key: str) -> str | None:
        result = run([*args, "--format", "json"])
        try:
            rows = json.loads(result.stdout)
        except ValueError:
            return None
        return str(rows[0][key]) if rows else None

    ticket = first(["ticket", "list", "--limit", "1"], "number")
    order = first(["workorder", "list", "--limit", "1"], "number")
    task = first(["task", "list", "--limit", "1"], "number")
    group = first(["ticket", "groups"], "number")
    commands = [
        ["household", "list"],
        ["household", "search", "袁"],
        ["household", "show", "H000001"],
        ["ticket", "list"],
        ["ticket", "register"],
        ["ticket", "groups"],
        ["ticket", "group", "overdue"],
        ["workorder", "list"],
        ["task", "list"],
        ["coordinate", "log"],
        ["satisfaction", "report"],
        ["satisfaction", "warnings"],
        ["survey", "list"],
        ["revisit", "due", "--month", "2026-12"],
        ["revisit", "appointments", "--month", "2026-12"],
        ["revisit", "follow-ups"],
        ["revisit", "report", "--month", "2026-12"],
        ["revisit", "show", "H000001"],
        ["campaign", "list"],
        ["campaign", "touchpoints"],
        ["club", "list"],
        ["activity", "list"],
        ["fund", "balance"],
        ["fund", "ledger"],
        ["improvement", "list"],
        ["sla", "list"],
        ["staff", "list"],
        ["team", "list"],
        ["repair", "items"],
        ["analysis", "chains"],
        ["analysis", "referrals"],
        ["analysis", "referrers"],
        ["analysis", "models"],
        ["analysis", "segment-runs"],
        ["profitability", "settings", "list"],
        ["audit", "list"],
        ["scheduler", "jobs"],
        ["import", "limits"],
        ["db", "current"],
        ["plugins"],
    ]
    for args, key in (
        (["ticket", "show"], ticket),
        (["workorder", "show"], order),
        (["task", "show"], task),
        (["ticket", "group", "show"], group),
    ):
        if key:
            commands.append([*args, key])
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--db", help="a database that already holds the demo")
    args = parser.parse_args()

    from crm.cli import cli

    runner = CliRunner()
    with tempfile.TemporaryDirectory() as folder:
        if not args.db:  # a database of its own, with its key beside it
            os.environ["CRM_HOME"] = str(Path(folder) / "home")
        url = args.db or f"sqlite:///{Path(folder) / 'demo.db'}"
        env = {"CRM_DATABASE_URL": url, "CRM_USER": MANAGER, "COLUMNS": str(args.width)}

        def run(argv: list[str]):
            return runner.invoke(cli, argv, env=env, catch_exceptions=False)

        if not args.db:
            start = time.perf_counter()
            made = run(["demo", "--households", str(args.households), "--now", "2026-12-02 10:00"])
            assert made.exit_code == 0, made.output
            run(["satisfaction", "warnings", "--detect"])
            run(["coordinate", "run"])
            print(f"demo built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        results = []
        for argv in listing_commands(run):
            result = run(argv)
            lines = result.stdout.splitlines()
            widest = max((width(line) for line in lines), default=0)
            note = result.stderr.strip().splitlines()
            left_out = next((line for line in note if "未显示" in line), "")
            results.append((widest, len(lines), result.exit_code, " ".join(argv), left_out))
    results.sort(reverse=True)
    print(f"COLUMNS={args.width}; widest line of each command (terminal columns):")
    for widest, count, code, name, left_out in results:
        status = "" if code == 0 else f"  [exit {code}]"
        print(f"{widest:5d}  {count:4d} lines  crm {name}{status}")
        if left_out:
            print(f"{'':18}{left_out}")
    over = [r for r in results if r[0] > args.width]
    print(f"widest: {results[0][0]} (crm {results[0][3]}); over {args.width}: {len(over)} commands")


if __name__ == "__main__":
    main()
