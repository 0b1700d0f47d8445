"""Benchmark: a year of a service centre on 3,000 households (crm.simulation), month by month.

    python bench/simulate.py [--households 3000] [--months 12] [--check-every 5] [--postgres URL]

Runs `crm simulate`'s library on a fresh SQLite file (and, with --postgres or
CRM_TEST_DATABASE_URL, on a fresh schema there, dropped afterwards): the demo portfolio built
at 2026-01-01, then calls, repairs, revisits, the scheduler's jobs (the SLA check every
--check-every minutes, warnings and coordination every morning, touchpoints, campaigns) and the
four-year visits, month by month. Prints the monthly table, the wall time per backend, and
whether the must-be-zero columns stayed at zero and the open tickets did not grow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import support


def run(label: str, url: str, households: int, months: int, check: int) -> dict:
    from crm.core.app import App
    from crm.core.clock import as_local
    from crm.core.security import User
    from crm.plugins import BUILTIN_PLUGINS
    from crm.simulation import Month, Options, Simulation

    app = App(url, user=User("基准", "admin"), builtins=BUILTIN_PLUGINS)
    app.init()
    start = as_local(dt.datetime(2026, 1, 1)).astimezone(dt.UTC)
    print(f"\n== {label}: {households} households, {months} months, check every {check} min")
    header = (
        f"{'month':8} {'calls':>6} {'open':>5} {'stuck':>5} {'sys':>4} {'rise':>4} {'card':>4} "
        f"{'dup':>4} {'refus':>5} {'breach':>6} {'escal':>5} {'warn':>5} {'tasks':>5} "
        f"{'csat%':>6} {'nps':>6}"
    )
    print(header)

    def show(m: Month) -> None:
        rate = f"{m.satisfaction_rate:.1%}" if m.satisfaction_rate is not None else "-"
        nps = f"{m.nps:.1f}" if m.nps is not None else "-"
        print(
            f"{m.month:8} {m.calls:6} {m.open_tickets:5} {m.stuck_tickets:5} "
            f"{m.system_complaints:4} {m.warning_rises_without_event:4} {m.card_mismatches:4} "
            f"{m.duplicate_contacts:4} {m.refused_actions:5} {m.breaches:6} {m.escalations:5} "
            f"{m.warnings:5} {m.tasks:5} {rate:>6} {nps:>6}",
            flush=True,
        )

    started = time.perf_counter()
    simulation = Simulation(
        app,
        Options(households=households, months=months, start=start, check_minutes=check),
        progress=show,
    )
    result = simulation.run()
    seconds = time.perf_counter() - started
    app.dispose()
    zero = all(getattr(m, name) == 0 for m in result for name in Month.MUST_BE_ZERO)
    opened = [m.open_tickets for m in result]
    print(f"{label}: wall time {seconds:.0f} s ({seconds / 60:.1f} min), peak RSS "
          f"{support.peak_rss_mib():.0f} MiB")  # fmt: skip
    print(f"{label}: must-be-zero columns all zero: {'yes' if zero else 'NO'}; open tickets at "
          f"month ends {min(opened)}-{max(opened)} (first {opened[0]}, last {opened[-1]})")  # fmt: skip
    for refusal in simulation.refusals[:10]:
        print(f"  refused: {refusal}")
    return {"seconds": seconds, "zero": zero}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--check-every", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("CRM_TEST_DATABASE_URL"))
    args = parser.parse_args()
    support.benchmark_key()
    support.run_on_each(
        run, "simulate.db", args.postgres, args.households, args.months, args.check_every
    )


if __name__ == "__main__":
    main()
