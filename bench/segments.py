"""Benchmark: segment 1,000,000 households (客户分群) end to end.

    python bench/segments.py [--households 1000000] [--as-of 2026-06-01] [--k K]
                             [--postgres URL]

Builds a fresh SQLite file (and, with --postgres / --database-url or CRM_TEST_DATABASE_URL, a
fresh schema on PostgreSQL, dropped afterwards) through the real migrations and fills it with
set-based INSERT … SELECT statements (a generated series of numbers, no rows built in Python).
Households fall in four planted kinds, drawn from a Lehmer hash of their number so the data
is the same every run: 15 % investors (two or three purchases, dearer units, club members),
20 % referrers (bring one or two new buyers, club members), 15 % complainers (one to three
complaints), 50 % ordinary buyers (one purchase, a few of them buy again or complain once).
About a third also have a repair record, which the complaint count must leave out.

Then times `crm.plugins.analysis.segments.run_segments` — the function `crm analysis segments`
calls — and prints its time split (features / k search / final fit / storing), the k chosen,
the silhouette of every k tried, the segments found and the peak RSS.
Target: under 60 s on SQLite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

import support
from sqlalchemy import text

PROJECTS = 20
BASE = "2008-01-01"
FIRST_PURCHASE_DAYS = 18 * 365  # first purchases spread over eighteen years from BASE
MODULUS = 2147483647  # the Lehmer (Park-Miller) generator's prime


def draw(stream: int, column: str = "n") -> str:
    """A number 0..999 that looks random in `column`, one independent stream per multiplier."""
    multiplier = (48271, 16807, 69621, 39373, 44497, 40692, 40014)[stream]
    return f"((({column} * {multiplier}) % {MODULUS}) % 1000)"


# The planted kind of household n: 0 investor, 1 referrer, 2 complainer, 3 ordinary.
KIND = (
    f"(CASE WHEN {draw(0)} < 150 THEN 0 WHEN {draw(0)} < 350 THEN 1 "
    f"WHEN {draw(0)} < 500 THEN 2 ELSE 3 END)"
)


class Dialect(support.Dialect):
    base = BASE

    def moment(self, days: str) -> str:
        """Two o'clock UTC on a day, as each backend stores a time stamp."""
        if self.name == "sqlite":
            return f"datetime('{BASE}', '+' || ({days}) || ' days', '+2 hours') || '.000000'"
        return f"(TIMESTAMPTZ '{BASE} 02:00:00+00' + CAST({days} AS INTEGER) * INTERVAL '1 day')"


def build(engine, households: int) -> dict[str, int]:
    sql = Dialect(engine.dialect.name)
    now = "'2026-06-01 00:00:00.000000'" if sql.name == "sqlite" else "now()"
    first_day = f"(({draw(1)} * 1000 + {draw(2)}) % {FIRST_PURCHASE_DAYS})"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (name, city, created_at, updated_at) "
                          + sql.series(PROJECTS, f"'基准项目' || n, '深圳', {now}, {now}")))  # fmt: skip
        project0 = conn.execute(text("SELECT min(id) FROM projects")).scalar_one()
        member = f"CASE WHEN {KIND} IN (0, 1) OR {draw(3)} < 250 THEN 'gold' ELSE 'none' END"
        conn.execute(
            text(
                "INSERT INTO households (code, name, status, project_id, member_tier, "
                "consent_contact, consent_marketing, created_at, updated_at) "
                + sql.series(
                    households,
                    f"'SH' || n, '业主' || n, 'existing', {project0} + n % {PROJECTS}, "
                    f"{member}, TRUE, FALSE, {now}, {now}",
                )
            )
        )
        household0 = conn.execute(text("SELECT min(id) FROM households")).scalar_one()
        purchase = (
            "INSERT INTO purchases (contract_no, household_id, purchase_date, amount, channel, "
            "promotions_attended, created_at, updated_at) "
        )
        # Investors buy dearer units; everyone else 0.8-3.8 million yuan.
        price = f"(800000 + {draw(4)} * 3000 + CASE WHEN {KIND} = 0 THEN 2500000 ELSE 0 END)"
        conn.execute(
            text(
                purchase
                + sql.series(
                    households,
                    f"'SC' || n || '-1', {household0} + n - 1, {sql.day(first_day)}, {price}, "
                    f"'walk_in', 0, {now}, {now}",
                )
            )
        )
        # Second purchases: every investor, 8 % of ordinary buyers; a third for half the investors.
        conn.execute(
            text(
                purchase
                + sql.series(
                    households,
                    f"'SC' || n || '-2', {household0} + n - 1, "
                    f"{sql.day(f'{first_day} + 200 + {draw(5)}')}, {price}, 'walk_in', 0, "
                    f"{now}, {now}",
                    where=f"{KIND} = 0 OR ({KIND} = 3 AND {draw(3)} < 80)",
                )
            )
        )
        conn.execute(
            text(
                purchase
                + sql.series(
                    households,
                    f"'SC' || n || '-3', {household0} + n - 1, "
                    f"{sql.day(f'{first_day} + 900 + {draw(5)}')}, {price}, 'walk_in', 0, "
                    f"{now}, {now}",
                    where=f"{KIND} = 0 AND {draw(6)} < 500",
                )
            )
        )
        # Referrers bring one new buyer, a third of them two; 3 % of the others bring one.
        referral = (
            "INSERT INTO referrals (referrer_household_id, referred_household_id, referred_on, "
            "created_at, updated_at) "
        )
        for turn, where in (
            (1, f"{KIND} = 1 OR {draw(6)} < 30"),
            (2, f"{KIND} = 1 AND {draw(6)} < 333"),
        ):
            conn.execute(
                text(
                    referral
                    + sql.series(
                        households,
                        f"{household0} + n - 1, "
                        f"{household0} + (n * {turn * 7919}) % {households}, "
                        f"{sql.day(f'{first_day} + {turn * 150} + {draw(5)} % 400')}, "
                        f"{now}, {now}",
                        where=where,
                    )
                )
            )
        record = (
            "INSERT INTO service_records (record_no, household_id, kind, channel, status, "
            "opened_at, closed_at, summary, created_at, updated_at) "
        )
        # Complainers complain one to three times, 5 % of the others once; a third of all
        # households have a repair on record, which is no complaint.
        for turn, kind, where in (
            (1, "complaint", f"{KIND} = 2 OR {draw(4)} < 50"),
            (2, "complaint", f"{KIND} = 2 AND {draw(5)} < 600"),
            (3, "complaint", f"{KIND} = 2 AND {draw(5)} < 250"),
            (4, "repair", f"{draw(2)} < 333"),
        ):
            opened = sql.moment(f"{first_day} + {turn * 120} + {draw(6)}")
            conn.execute(
                text(
                    record
                    + sql.series(
                        households,
                        f"'SR' || n || '-{turn}', {household0} + n - 1, '{kind}', 'phone', "
                        f"'closed', {opened}, {opened}, '基准记录', {now}, {now}",
                        where=where,
                    )
                )
            )
        conn.execute(text("ANALYZE"))
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("households", "purchases", "referrals", "service_records")
        }


def run(label: str, url: str, households: int, as_of: dt.date, k: int | None) -> float:
    from crm.core.app import App
    from crm.core.db import transaction
    from crm.core.security import User
    from crm.plugins import BUILTIN_PLUGINS
    from crm.plugins.analysis.segments import run_segments

    app = App(url, user=User("bench", "analyst"), builtins=BUILTIN_PLUGINS)
    try:
        app.init()
        started = time.perf_counter()
        counts = build(app.engine, households)
        print(f"[{label}] generated {', '.join(f'{n:,} {t}' for t, n in counts.items())} "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        started = time.perf_counter()
        with app.session() as session, transaction(session):
            result = run_segments(session, as_of=as_of, k=k)
            run = result.run
            households, chosen, chosen_by = run.households, run.k, run.chosen_by
            silhouette, tried = run.silhouette, dict(run.tried)
        seconds = time.perf_counter() - started
        steps = "  ".join(f"{step} {value:.1f} s" for step, value in result.timings.items())
        commit = seconds - sum(result.timings.values())
        print(f"[{label}] segmented {households:,} households in {seconds:.1f} s: "
              f"{steps}  commit {commit:.1f} s")  # fmt: skip
        scores = ", ".join(f"k={key} {value:.3f}" for key, value in tried.items())
        print(f"[{label}]   k = {chosen} chosen by {chosen_by}; silhouette {silhouette:.3f}; "
              f"tried: {scores}")  # fmt: skip
        for segment in result.segments:
            print(f"[{label}]   {segment['name']}: {segment['size']:,} "
                  f"({segment['share']:.1%}) {segment['description']}")  # fmt: skip
        return seconds
    finally:
        app.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 6, 1))
    parser.add_argument("--k", type=int, default=None, help="segments to make (default: search)")
    parser.add_argument(
        "--postgres",
        "--database-url",
        default=os.environ.get("CRM_TEST_DATABASE_URL"),
        metavar="URL",
    )
    args = parser.parse_args()
    support.benchmark_key()
    seconds = support.run_on_each(
        run, "segments.db", args.postgres, args.households, args.as_of, args.k
    )
    peak = support.peak_rss_mib()
    verdict = "meets" if seconds < 60 else "MISSES"
    print(
        f"SQLite: segmented {args.households:,} households in {seconds:.1f} s ({verdict} the "
        f"60 s target); peak RSS {peak:.0f} MiB.",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
