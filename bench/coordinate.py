"""Feedback through the whole coordination chain (target: at least 1,000 records/s on SQLite).

Builds a demo portfolio with the core demo library, gives each default team front-line staff,
bulk-inserts pending feedback records (satisfaction's sat_feedback) for its households, then
times one coordination cycle with the real plugins: satisfaction collects, profitability
assesses (when its assessment is available; otherwise a stand-in plan source defined here,
and the output says so), service handling opens, assigns and dispatches the tickets.

    python bench/coordinate.py [--records 100000] [--households 20000] [--batch 500] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from crm import hookimpl
from crm.core.chain import Assessment, Feedback, Plan


class StandInPlans:
    """Bench-only plan source, used when profitability's assessment is not available: two
    plans per feedback, the stronger the feedback the more the apology visit is worth."""

    @hookimpl(trylast=True)
    def assess_feedback(self, session, feedback: list[Feedback]) -> list[Assessment]:
        answers = []
        for item in feedback:
            options = [
                Plan("上门致歉回访", 300.0, 2000.0 * item.strength - 300.0, "客户不满，先上门致歉",
                     team="customer_service", ticket_type="complaint"),
                Plan("优先维修", 800.0, 600.0, "先把问题修好", team="technical",
                     ticket_type="repair"),
            ]  # fmt: skip
            best = max(options, key=lambda plan: plan.expected_value)
            answers.append(Assessment(feedback_id=item.id, options=options, best=best))
        return answers


def _real_assessment(app) -> str | None:
    """Why profitability's assessment cannot be used here, or None when it can."""
    impls = [
        impl
        for impl in app.pm.hook.assess_feedback.get_hookimpls()
        if not isinstance(impl.plugin, StandInPlans)
    ]
    if not impls:
        return "没有插件实现 assess_feedback"
    try:
        with app.session() as session:
            app.pm.hook.assess_feedback(session=session, feedback=[])
    except Exception as exc:  # noqa: BLE001  any failure means: not usable yet, say why
        return f"{type(exc).__name__}: {exc}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument("--staff", type=int, default=10, help="front-line staff per team")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--db", help="database URL (default: a new temporary SQLite file)")
    args = parser.parse_args()

    from sqlalchemy import func, insert, select

    from crm.core.app import App
    from crm.core.db import transaction
    from crm.core.demo import build_demo
    from crm.core.models import Household
    from crm.core.security import User, new_key
    from crm.plugins import BUILTIN_PLUGINS
    from crm.plugins.coordination.cycle import run_cycle
    from crm.plugins.coordination.models import Decision
    from crm.plugins.satisfaction.models import FeedbackRecord
    from crm.plugins.service.models import Staff, Team, Ticket, WorkOrder

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'coordinate.db'}"
        if not args.db:  # a throw-away key for a throw-away database
            os.environ["CRM_SECRET_KEY"] = new_key()
        app = App(url, user=User("bench", "admin"), builtins=BUILTIN_PLUGINS)
        app.init()
        started = time.perf_counter()
        with app.session() as session, transaction(session):
            build_demo(session, households=args.households, seed=args.seed)
        rng = random.Random(args.seed)
        with app.session() as session, transaction(session):
            teams = session.execute(select(Team.id, Team.code)).all()
            session.execute(
                insert(Staff),
                [
                    {"name": f"{code}-{n:02d}", "team_id": team_id, "title": "一线", "level": 1,
                     "skills": [], "active": True}
                    for team_id, code in teams
                    for n in range(1, args.staff + 1)
                ],
            )  # fmt: skip
            homes = session.scalars(select(Household.id).order_by(Household.id)).all()
            session.execute(
                insert(FeedbackRecord),
                [
                    {
                        "key": f"bench:{i}",
                        "kind": "satisfaction_drop",
                        "household_id": homes[i % len(homes)],
                        "reason": "客户最近一次满意度评分 1 分，明显低于此前平均 4.2 分。",
                        "strength": round(rng.uniform(0.2, 1.0), 2),
                        "status": "pending",
                    }
                    for i in range(args.records)
                ],
            )
        prepared = time.perf_counter() - started

        why_not = _real_assessment(app)
        if why_not is not None:
            app.pm.register(StandInPlans(), name="bench-stand-in-plans")
            source = f"替代方案来源（仅本基准）：盈利能力评估暂不可用（{why_not}）"
        else:
            source = "盈利能力评估（profitability 插件）"

        def counts() -> tuple[int, int, int]:
            with app.session() as session:
                return tuple(
                    session.scalar(select(func.count()).select_from(model))
                    for model in (Decision, Ticket, WorkOrder)
                )

        before = counts()
        with app.session() as session:
            report = run_cycle(session, batch=args.batch)
        decisions, tickets, orders = (n - m for n, m in zip(counts(), before, strict=True))
        app.dispose()

    rate = report.collected / report.seconds if report.seconds else 0.0
    print(f"方案来源：{source}")
    print(
        f"{report.collected:,} feedback records through the chain on {url.split(':', 1)[0]} "
        f"in {report.seconds:.1f} s: {rate:,.0f} records/s (target >= 1,000/s); "
        f"batch {args.batch}, {len(homes):,} households, data prepared in {prepared:.1f} s"
    )
    print(
        f"  assessed {report.assessed:,}, no plan {report.no_plan:,}, dispatched "
        f"{report.dispatched:,}, not carried out {report.undispatched:,}; new decisions "
        f"{decisions:,}, new tickets {tickets:,}, new work orders {orders:,}"
    )
    for step, seconds in report.step_seconds.items():
        print(f"  {step:<18} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
