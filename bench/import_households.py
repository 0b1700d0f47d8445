"""Benchmark: import N generated households through the real import path and compare with a
raw sqlite3.executemany of the same rows into a table of the same shape.

    python bench/import_households.py [--rows 200000] [--repeat 3] [--profile] [--tracemalloc]

This machine's timings wander by +-15% from run to run, so both loads run --repeat times,
alternating, each into a fresh database; the figures are the medians. Prints rows/s of `crm.core.importing.import_file` (the function `crm import households`
calls), rows/s of the raw load, their ratio, and peak memory: the process's peak RSS
(ru_maxrss) by default, or the tracemalloc peak of the import with --tracemalloc (which slows
the import, so its rows/s is then not the figure to quote).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import datetime as dt
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import support

HEADERS = (
    "户号",
    "姓名",
    "客户状态",
    "项目",
    "年龄",
    "家庭收入",
    "住房情况",
    "学历",
    "职业",
    "社团活动",
    "会员等级",
    "同意联系",
    "同意营销",
    "备注",
)
COLUMNS = (
    "code",
    "name",
    "status",
    "project_id",
    "age",
    "income_band",
    "housing",
    "education",
    "occupation",
    "club_activities",
    "member_tier",
    "consent_contact",
    "consent_marketing",
    "note",
    "created_at",
    "updated_at",
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
PROJECTS = [
    f"{name}{kind}"
    for name in ("万科城", "金色家园", "四季花城", "东海岸")
    for kind in "一二三四五"
]


def generate(path: Path, rows: int) -> None:
    """Write the CSV as a stream, so generating does not weigh on the memory figure."""
    from crm.core import vocab

    rng = random.Random(20240305)
    choice = rng.choice
    status = list(vocab.HOUSEHOLD_STATUS.values())
    income = list(vocab.INCOME_BANDS.values())
    housing = list(vocab.HOUSING.values())
    education = list(vocab.EDUCATION.values())
    tiers = list(vocab.MEMBER_TIERS.values())
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for n in range(rows):
            writer.writerow(
                (
                    f"H{n:08d}",
                    choice(SURNAMES) + choice(GIVEN) + choice(("", *GIVEN)),
                    choice(status),
                    choice(PROJECTS),
                    rng.randint(22, 75),
                    choice(income),
                    choice(housing),
                    choice(education),
                    choice(("教师", "医生", "工程师", "公务员", "个体经营", "")),
                    choice(("", "", "羽毛球俱乐部", "业主合唱团")),
                    choice(tiers),
                    choice("是否"),
                    choice("是否"),
                    "",
                )
            )


def crm_import(db: Path, source: Path, profile: bool, trace: bool) -> tuple[float, int | None]:
    from crm.core.app import App
    from crm.core.db import transaction
    from crm.core.importing import import_file
    from crm.core.plugins import make_plugin_manager
    from crm.core.security import User

    app = App(f"sqlite:///{db}", user=User("bench", "admin"), pm=make_plugin_manager(()))
    app.init()
    profiler = cProfile.Profile() if profile else None
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    with app.session() as session, transaction(session):
        result = import_file(session, "households", source)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    app.dispose()
    print(f"crm import: {result.summary()}", file=sys.stderr)
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    return elapsed, peak


def raw_import(db: Path, source: Path) -> float:
    """The floor: csv.reader straight into executemany, no conversion, no checks."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE households (id INTEGER PRIMARY KEY, code VARCHAR(40) NOT NULL, "
        "name VARCHAR(100) NOT NULL, status VARCHAR(20) NOT NULL, project_id INTEGER, "
        "age INTEGER, income_band VARCHAR(20), housing VARCHAR(20), education VARCHAR(30), "
        "occupation VARCHAR(100), club_activities VARCHAR(200), member_tier VARCHAR(20) NOT NULL, "
        "consent_contact BOOLEAN NOT NULL, consent_marketing BOOLEAN NOT NULL, note TEXT, "
        "created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX uq_households_code ON households (code)")
    conn.commit()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    placeholders = ", ".join("?" * len(COLUMNS))
    sql = f"INSERT INTO households ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    start = time.perf_counter()
    with source.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        conn.executemany(sql, (row + [now, now] for row in reader))
    conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _seconds(runs: list[float]) -> str:
    return ", ".join(f"{r:.2f}" for r in runs) + " s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="households to generate")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each load (median kept)")
    parser.add_argument("--profile", action="store_true", help="cProfile the import to stderr")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="report the tracemalloc peak of the import"
    )
    args = parser.parse_args()

    from crm.core.security import new_key

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        folder = Path(tmp)
        os.environ["CRM_SECRET_KEY"] = new_key()
        os.environ["CRM_HOME"] = str(folder / "home")
        source = folder / "households.csv"
        generate(source, args.rows)
        size = source.stat().st_size
        raw_runs, crm_runs = [], []
        for n in range(args.repeat):
            raw_runs.append(raw_import(folder / f"raw{n}.db", source))
            seconds, peak = crm_import(
                folder / f"crm{n}.db", source, args.profile, args.tracemalloc
            )
            crm_runs.append(seconds)
            (folder / f"raw{n}.db").unlink()
        seconds, raw_seconds = statistics.median(crm_runs), statistics.median(raw_runs)

    rate, raw_rate = args.rows / seconds, args.rows / raw_seconds
    print(f"rows: {args.rows:,} ({size / 2**20:.1f} MiB CSV, UTF-8 with BOM, Chinese headers)")
    runs = f"median of {args.repeat} runs"
    print(f"crm import: {seconds:.2f} s, {rate:,.0f} rows/s ({runs}: {_seconds(crm_runs)})")
    print(
        f"raw sqlite3.executemany: {raw_seconds:.2f} s, {raw_rate:,.0f} rows/s "
        f"({runs}: {_seconds(raw_runs)})"
    )
    print(f"ratio: {rate / raw_rate:.3f} (target >= 0.25)")
    if peak is not None:
        print(f"peak memory: {peak / 2**20:.1f} MiB (tracemalloc peak during the import)")
    else:
        rss = support.peak_rss_mib()
        print(f"peak memory: {rss:.1f} MiB (ru_maxrss, peak RSS of the whole process)")


if __name__ == "__main__":
    main()
