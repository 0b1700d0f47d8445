"""Group complaints (群诉) on the demo: false positives and whether the planted one is found.

    python bench/group_complaints.py [--households 3000] [--seeds 2026] [--now 'YYYY-MM-DD HH:MM']

For each seed, builds the demo (as `crm demo`, dated back from --now, default the current
time) in a fresh temporary SQLite file, then:
  1. runs the periodic check once, as `crm ticket check` does: groups it creates are false
     positives (the demo planted its one group already);
  2. runs detection once a day at 10:00 over the demo's two years, oldest first, as a scheduler
     would have: every group besides the planted one is a false positive;
  3. takes the planted group away (its tickets unlinked) and detects again at `now`: the
     planted tickets should come back as exactly one group, with nothing else.
Prints one line per seed and the totals (target: 0 false positives, planted group found).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from pathlib import Path


def run(seed: int, households: int, now: dt.datetime) -> dict:
    from sqlalchemy import delete, select, update

    from crm.core.app import App
    from crm.core.db import transaction
    from crm.core.demo import build_demo
    from crm.core.security import User, new_key
    from crm.plugins import BUILTIN_PLUGINS
    from crm.plugins.service.escalation import run_escalations
    from crm.plugins.service.groups import detect_group_complaints
    from crm.plugins.service.models import (
        GroupComplaint,
        GroupEvent,
        GroupMember,
        GroupStep,
        Ticket,
    )

    os.environ["CRM_SECRET_KEY"] = new_key()
    with tempfile.TemporaryDirectory() as tmp:
        app = App(f"sqlite:///{Path(tmp) / 'demo.db'}", User("bench", "admin"), BUILTIN_PLUGINS)
        app.init()
        with app.session() as session, transaction(session):
            build_demo(session, households=households, seed=seed, now=now)
        with app.session() as session, transaction(session):
            planted = session.scalars(select(GroupComplaint.id)).all()
            tickets = set(session.scalars(select(Ticket.id).where(Ticket.group_id.is_not(None))))
            check = run_escalations(session, now)["groups"]
            session.rollback()
        with app.session() as session, transaction(session):
            for day in range(730, -1, -1):
                detect_group_complaints(session, now - dt.timedelta(days=day))
            history = session.scalars(
                select(GroupComplaint).where(GroupComplaint.id.not_in(planted))
            ).all()
            found = [(g.number, g.topic, g.households) for g in history]
            session.rollback()
        with app.session() as session, transaction(session):
            for model in (GroupEvent, GroupStep, GroupMember):
                session.execute(delete(model))
            session.execute(update(Ticket).values(group_id=None))
            session.execute(delete(GroupComplaint))
            again = detect_group_complaints(session, now)
            linked = [
                set(session.scalars(select(Ticket.id).where(Ticket.group_id == g.id)))
                for g in again
            ]
            session.rollback()
        app.dispose()
    refound = len(linked) == 1 and linked[0] == tickets if tickets else not linked
    return {
        "seed": seed,
        "planted": len(planted),
        "check_fp": len(check),
        "history_fp": len(found),
        "history": found,
        "refound": refound,
        "refound_fp": sum(1 for group in linked if not group <= tickets),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--seeds", default="2026", help="comma-separated, e.g. 2026,1,2,3")
    parser.add_argument("--now", help="the demo's now, local time (default: the current time)")
    args = parser.parse_args()
    from crm.core.clock import parse_local_minute

    now = parse_local_minute(args.now, "now") if args.now else dt.datetime.now(dt.UTC)
    totals = {"check_fp": 0, "history_fp": 0, "refound_fp": 0, "missed": 0}
    for seed in (int(s) for s in args.seeds.split(",")):
        r = run(seed, args.households, now)
        print(
            f"seed {seed}: planted {r['planted']}; false positives: check {r['check_fp']}, "
            f"daily over two years {r['history_fp']}, re-detection {r['refound_fp']}; "
            f"planted group found again: {'yes' if r['refound'] else 'NO'}",
            flush=True,
        )
        for number, topic, n in r["history"]:
            print(f"    {number} ({n} households): {topic}")
        totals["check_fp"] += r["check_fp"]
        totals["history_fp"] += r["history_fp"]
        totals["refound_fp"] += r["refound_fp"]
        totals["missed"] += not r["refound"]
    print("total:", ", ".join(f"{k} {v}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
