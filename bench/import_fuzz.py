"""Fuzz run of the import: N generated rows of all four kinds, in CSV (UTF-8, UTF-8 with BOM,
GB18030), JSON lines and XLSX, full of control characters, huge numbers, stray quotes, cells
past the column lengths, repeated keys and truncated last lines, imported through
`crm.core.importing.import_file` (what `crm import` calls).

    python bench/import_fuzz.py [--rows 50000] [--seed 1] [--postgres URL]

Prints, per database: the count of tracebacks (any exception other than the one-sentence
CrmError; target 0), files refused with a sentence, rows imported (inserted, updated or
unchanged), rows rejected, rows unaccounted for (target 0: each row is imported or in the
reject file), stored values holding a control character (target 0) and the wall time.
Without --postgres, CRM_TEST_DATABASE_URL is used when set.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import support

from crm.core.schemas import SCHEMAS, compile_schema

# The columns of each kind, as the import reads them.
KINDS = {kind: tuple(compile_schema(schema)) for kind, schema in SCHEMAS.items()}
# Of every 10 rows: households 4, then 2 of each other kind.
SHARE = {"households": 0.4, "members": 0.2, "purchases": 0.2, "service": 0.2}
FORMATS = ("utf-8", "utf-8-sig", "gb18030", "jsonl", "xlsx")
NASTY = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[2J\x1b[31m红",
    "\t",
    "\r\n",
    '"',
    'a"b',
    "1e30",
    "1e12",
    "-1",
    "9" * 50,
    "9" * 5000,
    "1e999999999",
    "NaN",
    "inf",
    '=HYPERLINK("http://x?"&A1)',
    "Ｈ１",
    "\u3000张伟\u3000",
    "\ufeff",
    "x" * 41,
    "长" * 101,
    "注" * 10_001,
    "\x9b31m",
    "\x7f",
    "𠀀𠀁",
    "2024-02-30",
    "9999-12-31 23:59 -14:00",
    "2024-03-05 10:00+99:00",
    "0001-01-01",
    "100000000万",
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class Fuzzer:
    def __init__(self, seed: int):
        from crm.core import vocab
        from crm.core.identity import id_check_digit

        self.random = random.Random(seed)
        self.vocab = vocab
        self.check_digit = id_check_digit
        # Household codes handed out so far: mostly new ones, a few repeated (within a file
        # and across files); the other kinds refer to them.
        self.codes = ["H000000"]
        self.serial = 0

    def nasty(self) -> str:
        r = self.random
        if r.random() < 0.5:
            return r.choice(NASTY)
        ranges = ((0, 0x20), (0x20, 0x7F), (0x7F, 0xA0), (0x4E00, 0x9FFF), (0x10000, 0x10FFFF))
        low, high = r.choice(ranges)
        return "".join(chr(r.randrange(low, high)) for _ in range(r.randrange(0, 20)))

    def good(self, column: str, kind: str, n: int) -> str:
        r, v = self.random, self.vocab
        day = dt.date(2015, 1, 1) + dt.timedelta(days=r.randrange(3650))
        values = {
            "code": self.household_code,
            "household_code": lambda: r.choice(self.codes),
            "referrer_code": lambda: r.choice(("", r.choice(self.codes))),
            "contract_no": lambda: self.serial_number("C"),
            "record_no": lambda: self.serial_number("S"),
            "name": lambda: r.choice(SURNAMES) + r.choice(GIVEN) * r.randrange(1, 3),
            "status": lambda: r.choice(
                list(v.SERVICE_STATUS if kind == "service" else v.HOUSEHOLD_STATUS)
            ),
            "project": lambda: r.choice(("万科城", "金色家园")),
            "building": lambda: str(r.randrange(1, 30)),
            "unit": lambda: f"{r.randrange(1, 33)}0{r.randrange(1, 5)}",
            "age": lambda: str(r.randrange(18, 90)),
            "income_band": lambda: r.choice(list(v.INCOME_BANDS.values())),
            "housing": lambda: r.choice(list(v.HOUSING)),
            "education": lambda: r.choice(list(v.EDUCATION.values())),
            "occupation": lambda: r.choice(("教师", "医生", "")),
            "club_activities": lambda: r.choice(("", "羽毛球俱乐部")),
            "member_tier": lambda: r.choice(list(v.MEMBER_TIERS)),
            "consent_contact": lambda: r.choice("是否"),
            "consent_marketing": lambda: r.choice(("Y", "N", "")),
            "note": lambda: r.choice(("", "老业主介绍", "第一行\n第二行")),
            "role": lambda: r.choice(list(v.MEMBER_ROLES.values())),
            "phone": lambda: f"13{r.randrange(10**9):09d}",
            "alt_phone": lambda: r.choice(("", f"010-{r.randrange(10**8):08d}")),
            "id_number": lambda: self.id_number(day),
            "purchase_date": lambda: day.isoformat(),
            "handover_date": lambda: r.choice(("", f"{day:%Y年%m月%d日}")),
            "floor_area": lambda: f"{r.uniform(40, 300):.1f}㎡",
            "amount": lambda: r.choice((f"{r.uniform(50, 900):.1f}万", f"¥{r.randrange(10**7):,}")),
            "channel": lambda: r.choice(
                list(v.SERVICE_CHANNELS if kind == "service" else v.PURCHASE_CHANNELS)
            ),
            "promotions_attended": lambda: str(r.randrange(0, 10)),
            "kind": lambda: r.choice(list(v.SERVICE_KINDS.values())),
            "opened_at": lambda: f"{day} {r.randrange(8, 18)}:{r.randrange(60):02d}",
            "closed_at": lambda: r.choice(("", f"{day + dt.timedelta(days=3)} 09:00")),
            "summary": lambda: r.choice(("漏水", "门锁坏了\r\n请尽快处理", "物业费咨询")),
            "result": lambda: r.choice(("", "已修复")),
        }
        if kind == "service" and column in ("project", "building", "unit"):
            return ""  # a service record names only a unit that exists; most name none
        return values[column]()

    def household_code(self) -> str:
        if self.random.random() < 0.03:
            return self.random.choice(self.codes)
        self.codes.append(f"H{len(self.codes):06d}")
        return self.codes[-1]

    def serial_number(self, head: str) -> str:
        self.serial += 1
        if self.random.random() < 0.03:
            return f"{head}{self.random.randrange(1, self.serial):07d}"
        return f"{head}{self.serial:07d}"

    def id_number(self, day: dt.date) -> str:
        first17 = f"110105{day.year - 30}{day:%m%d}{self.random.randrange(1000):03d}"
        return first17 + self.check_digit(first17)

    def rows(self, kind: str, count: int) -> list[list[str]]:
        r = self.random
        rows = []
        for n in range(count):
            rows.append(
                [
                    self.nasty() if r.random() < 0.03 else self.good(column, kind, n)
                    for column in KINDS[kind]
                ]
            )
        return rows


def write_file(folder: Path, name: str, kind: str, rows, fmt: str, r: random.Random):
    """The file and how many records (data rows) it holds."""
    headers = KINDS[kind]
    extra = 0
    if fmt == "jsonl":
        path = folder / f"{name}.jsonl"
        lines = []
        for row in rows:
            record = dict(zip(headers, row))
            escaped = r.random() < 0.5
            if escaped and r.random() < 0.02:
                record["name"] = "\ud800" + record.get("name", "")  # JSON may carry these
            lines.append(json.dumps(record, ensure_ascii=escaped))
        if r.random() < 0.5:
            lines.append('{"broken": ')
            extra += 1
        text = "\n".join(lines) + "\n"
        path.write_bytes(text.encode("utf-8"))
        return path, len(lines)
    if fmt == "xlsx":
        import openpyxl
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        path = folder / f"{name}.xlsx"
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet()
        sheet.append(list(headers))
        count = 0
        for row in rows:
            cells = [ILLEGAL_CHARACTERS_RE.sub("?", cell) for cell in row]
            sheet.append([c if c else None for c in cells])
            count += any(cells)
        book.save(path)
        return path, count
    path = folder / f"{name}.csv"
    out = io.StringIO()
    csv.writer(out).writerow(headers)
    count = 0
    for row in rows:
        if r.random() < 0.003:  # a stray quote: one line CSV cannot read
            out.write(f'{row[0]},"a"b,c\r\n')
            count += 1
        elif r.random() < 0.0005:  # a cell past the CSV reader's limit
            out.write(f"{row[0]},{'长' * 140_000}\r\n")
            count += 1
        csv.writer(out).writerow(row)
        count += any(row)
    if r.random() < 0.5:  # a last line cut inside a quoted cell
        out.write(f'{rows[0][0] if rows else "X"},"被截断')
        count += 1
    path.write_bytes(out.getvalue().encode(fmt))
    return path, count


def run(label: str, url: str, total: int, seed: int) -> dict:
    from sqlalchemy import text

    from crm.core.app import App
    from crm.core.db import transaction
    from crm.core.errors import CrmError
    from crm.core.importing import import_file
    from crm.core.security import User
    from crm.plugins import BUILTIN_PLUGINS

    app = App(url, user=User("fuzz", "admin"), builtins=BUILTIN_PLUGINS)
    app.init()
    fuzzer = Fuzzer(seed)
    r = random.Random(seed + 1)
    figures = {"tracebacks": 0, "refused": 0, "imported": 0, "rejected": 0, "unaccounted": 0}
    figures["files"] = 0
    per_file = 2500
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crm-fuzz-") as tmp:
        folder = Path(tmp)
        for kind, share in SHARE.items():
            left = int(total * share)
            number = 0
            while left > 0:
                count = min(per_file, left)
                left -= count
                number += 1
                fmt = FORMATS[(number + len(kind)) % len(FORMATS)]
                rows = fuzzer.rows(kind, count)
                path, records = write_file(folder, f"{kind}{number}", kind, rows, fmt, r)
                figures["files"] += 1
                try:
                    with app.session() as session, transaction(session):
                        result = import_file(session, kind, path)
                except CrmError as exc:
                    figures["refused"] += 1
                    print(f"  {path.name}: refused: {exc}", file=sys.stderr)
                    continue
                except Exception:  # noqa: BLE001 - counting them is the point
                    figures["tracebacks"] += 1
                    print(f"  {path.name}: TRACEBACK", file=sys.stderr)
                    traceback.print_exc()
                    continue
                imported = result.inserted + result.updated + result.unchanged
                figures["imported"] += imported
                figures["rejected"] += result.rejected
                figures["unaccounted"] += records - imported - result.rejected
    figures["seconds"] = time.perf_counter() - start
    figures["controls"] = 0
    checks = {
        "households": ("code", "name", "occupation", "club_activities"),
        "members": ("name",),
        "service_records": ("record_no",),
        "projects": ("name",),
    }
    with app.engine.connect() as conn:
        for table, columns in checks.items():
            for column in columns:
                for (value,) in conn.execute(text(f"SELECT {column} FROM {table}")):
                    figures["controls"] += bool(value and CONTROL.search(value))
        for table, column in (("households", "note"), ("service_records", "summary")):
            for (value,) in conn.execute(text(f"SELECT {column} FROM {table}")):
                figures["controls"] += bool(value and NOTE_CONTROL.search(value))
    app.dispose()
    print(
        f"{label}: {figures['tracebacks']} tracebacks (target 0); "
        f"{figures['files']} files, {figures['refused']} refused with a sentence; "
        f"{figures['imported']:,} rows imported, {figures['rejected']:,} rejected, "
        f"{figures['unaccounted']} unaccounted (target 0); "
        f"{figures['controls']} stored values with control characters (target 0); "
        f"{figures['seconds']:.1f} s"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres", default=os.environ.get("CRM_TEST_DATABASE_URL"), metavar="URL"
    )
    args = parser.parse_args()
    support.benchmark_key()
    figures = support.run_on_each(run, "fuzz.db", args.postgres, args.rows, args.seed)
    if figures["tracebacks"] or figures["unaccounted"] or figures["controls"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
