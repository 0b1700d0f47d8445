"""Time to build the demo portfolio (target: 100,000 households in under 60 s on SQLite).

Builds it with the library function in a fresh temporary SQLite file (or the database given
with --db, which must be empty or a demo) and prints the time and the rows per table.

    python bench/demo.py [--households 100000] [--seed 2026] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--db", help="database URL (default: a new temporary SQLite file)")
    args = parser.parse_args()

    from crm.core.app import App
    from crm.core.db import transaction
    from crm.core.demo import build_demo, table_counts
    from crm.core.security import User, new_key
    from crm.plugins import BUILTIN_PLUGINS

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'demo.db'}"
        if not args.db:  # a throw-away key for a throw-away database
            os.environ["CRM_SECRET_KEY"] = new_key()
        # The built-in plugins add their sample data (tickets, surveys…) as `crm demo` does.
        app = App(url, user=User("bench", "admin"), builtins=BUILTIN_PLUGINS)
        started = time.perf_counter()
        app.init()
        initialised = time.perf_counter()
        with app.session() as session, transaction(session):
            summary = build_demo(session, households=args.households, seed=args.seed)
            built = time.perf_counter()
        committed = time.perf_counter()
        total = committed - started
        with app.session() as session:
            counts = table_counts(session)
        app.dispose()
        size = Path(url.split(":///", 1)[1]).stat().st_size if url.startswith("sqlite") else 0

    rows = sum(counts.values())
    print(
        f"demo with {args.households:,} households on {url.split(':', 1)[0]}: "
        f"{total:.1f} s in all (init {initialised - started:.1f} s, build "
        f"{built - initialised:.1f} s, commit {committed - built:.1f} s), "
        f"{rows / total:,.0f} rows/s (target < 60 s)"
    )
    for name, count in counts.items():
        print(f"  {name:<16} {count:>10,}")
    print(
        f"  referral share {summary.referral_share:.1%}, repeat buyers {summary.repeat_share:.1%}"
        f", club members' repeat-purchase rate {summary.member_repeat_rate:.1%}"
        + (f", file {size / 2**20:,.0f} MiB" if size else "")
    )
    for line in summary.plugin_lines:
        print(f"  {line}")


if __name__ == "__main__":
    main()
