"""The coordination cycle (协调控制): feedback → assessment → plan → dispatch, through hooks only.

"When satisfaction monitoring feeds customer information back to coordination, coordination
at once asks profitability assessment to evaluate and propose the best plan, then instructs
service handling to carry it out" (DOMAIN.md section 5). One cycle:

1. checks that some plugin answers each step of the chain, before touching any feedback;
2. refreshes the outcome of work dispatched earlier (dispatch_outcomes): a decision whose
   tasks are all done is closed with what the customer answered and whether they accepted;
3. finishes decisions an earlier, interrupted cycle left collected or assessed;
4. collects pending feedback in batches (collect_feedback), assesses each batch
   (assess_feedback) and instructs service handling to carry out the chosen plans
   (carry_out_plans), which gives them to staff as tasks linked to the decision.
Every hook is told the cycle's `now`, so a cycle run for a given time (a simulation, a replay)
decides and dispatches as of that time.

Exactly once: each decision row (unique on the feedback id) is written in the transaction that
collects its feedback, and every later step commits together with its effects, so a crash
leaves each decision in its last committed state for the next cycle to resume and never
half-done. Two cycles at once claim different decisions: SKIP LOCKED on PostgreSQL; on SQLite
each step takes the write lock before it reads, so the cycles take turns.

`run_cycle` owns its transactions (one per step and batch); everything else here runs in the
caller's transaction and never commits.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.chain import Feedback, Instruction, Plan
from crm.core.db import begin_write, transaction
from crm.core.errors import CrmError
from crm.core.models import utcnow
from crm.core.paging import Page, fetch
from crm.core.vocab import code_of
from crm.plugins.coordination.models import Decision
from crm.plugins.coordination.vocab import STATUSES

BATCH = 500
# The steps of the chain, each answered by some other plugin: hook -> what a person calls it.
STEPS = {
    "collect_feedback": "满意度监测反馈",
    "assess_feedback": "盈利能力评估",
    "carry_out_plans": "服务处理执行",
}
# Work still running; anything else a service plugin reports (closed, cancelled, …) is done.
OPEN_WORK = ("open", "unknown")
PLAN_FIELDS = tuple(f.name for f in fields(Plan))
PLAN_NUMBERS = ("cost", "expected_value", "retention_gain", "referral_gain")


class MissingStep(CrmError):
    """No plugin carries out a step of the chain (disabled, or it gave no answer)."""


@dataclass
class CycleReport:
    """What one cycle did, per step."""

    collected: int = 0
    assessed: int = 0
    no_plan: int = 0
    dispatched: int = 0
    undispatched: int = 0
    closed: int = 0
    seconds: float = 0.0
    # Seconds spent per step (collect, assess, dispatch, refresh_outcomes), for benchmarks.
    step_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line on what each step did."""
        return (
            f"收集反馈 {self.collected} 条，得出方案 {self.assessed} 条（无方案 {self.no_plan}），"
            f"派工 {self.dispatched} 条（未能派工 {self.undispatched}），办结 {self.closed} 条"
        )

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("step_seconds")
        row["seconds"] = round(self.seconds, 3)
        return row


# --- the chain --------------------------------------------------------------------------------


def missing_steps(pm) -> list[str]:
    """The hooks of the chain no loaded plugin implements (pluggy's public API)."""
    return [name for name in STEPS if not getattr(pm.hook, name).get_hookimpls()]


def _missing_message(hooks: list[str], detail: str) -> str:
    named = "、".join(f"“{STEPS[hook]}”（{hook}）" for hook in hooks)
    return f"缺少{named}：{detail}"


def require_chain(pm) -> None:
    """Refuse to start when a step has no plugin, so no feedback is taken that nobody can
    carry further."""
    missing = missing_steps(pm)
    if missing:
        raise MissingStep(
            _missing_message(
                missing,
                "没有已加载的插件提供这一步（是否被 CRM_DISABLE_PLUGINS 停用？）；"
                "反馈仍保持待处理，本次未收集任何反馈。",
            )
        )


def _write_lock(session: Session) -> None:
    """Start the step's transaction holding the write lock on SQLite (`begin_write`), so two
    cycles never read the same pending rows. PostgreSQL claims rows with SKIP LOCKED instead."""
    begin_write(session)


CLAIMED = (
    Decision.id,
    Decision.feedback_id,
    Decision.household_id,
    Decision.project_id,
    Decision.household_code,
    Decision.reason,
    Decision.strength,
    Decision.source,
    Decision.project,
    Decision.chosen,
)


def _claim(session: Session, status: str, limit: int) -> list:
    """Up to `limit` decisions in `status`, locked for this transaction (rows, not objects:
    a batch is read once and updated in bulk)."""
    return session.execute(
        select(*CLAIMED)
        .where(Decision.status == status)
        .order_by(Decision.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def _update(session: Session, changes: list[dict[str, Any]]) -> None:
    """UPDATE decisions by id, one executemany per set of columns changed (Core: the ORM's
    bulk update costs about twice as much per row)."""
    table = Decision.__table__
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    for keys, rows in groups.items():
        columns = [key for key in keys if key != "id"]
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({key: bindparam(f"b_{key}") for key in columns})
        )
        session.execute(statement, [{f"b_{key}": row[key] for key in keys} for row in rows])


def _feedback(decision) -> Feedback:
    return Feedback(
        id=decision.feedback_id,
        household_id=decision.household_id,
        reason=decision.reason,
        strength=decision.strength,
        source=decision.source,
        project_id=decision.project_id,
        household_code=decision.household_code,
        project=decision.project,
    )


def _plan_dict(plan: Plan) -> dict[str, Any]:
    # Field by field: dataclasses.asdict deep-copies, the slowest part of a large batch.
    row = {name: getattr(plan, name) for name in PLAN_FIELDS}
    # numpy scalars from a model are not JSON; the plan's figures are plain floats.
    for key in PLAN_NUMBERS:
        row[key] = float(row[key])
    return row


def collect(session: Session, limit: int, now: dt.datetime) -> int:
    """Take up to `limit` pending feedback records and write their decisions (status
    collected) in the caller's transaction, the one in which the sources mark them handed."""
    pm = session.info["pm"]
    handed = [
        fb
        for batch in pm.hook.collect_feedback(session=session, limit=limit, now=now)
        for fb in batch or []
    ]
    if not handed:
        return 0
    ids = {fb.id for fb in handed}
    # A record some source hands twice is recorded once: the first decision stands.
    known = set(session.scalars(select(Decision.feedback_id).where(Decision.feedback_id.in_(ids))))
    rows, seen = [], set(known)
    for fb in handed:
        if fb.id in seen:
            continue
        seen.add(fb.id)
        rows.append(
            {
                "feedback_id": fb.id,
                "source": fb.source,
                "household_id": fb.household_id,
                "project_id": fb.project_id,
                "household_code": fb.household_code,
                "project": fb.project,
                "reason": fb.reason,
                "strength": float(fb.strength),
                "status": "collected",
                "collected_at": now,
            }
        )
    if rows:
        session.execute(insert(Decision.__table__), rows)
        audit.record(session, "collect", "coord_decisions", detail=f"协调收集反馈 {len(rows)} 条")
    return len(rows)


def assess(session: Session, limit: int, now: dt.datetime) -> tuple[int, int]:
    """Assess up to `limit` collected decisions; returns (assessed, without a plan)."""
    decisions = _claim(session, "collected", limit)
    if not decisions:
        return 0, 0
    pm = session.info["pm"]
    answer = pm.hook.assess_feedback(
        session=session, feedback=[_feedback(d) for d in decisions], now=now
    )
    if answer is None:
        raise MissingStep(
            _missing_message(
                ["assess_feedback"],
                f"插件没有给出评估；{len(decisions)} 条反馈保持“已收集”，下次运行时继续。",
            )
        )
    by_id = {a.feedback_id: a for a in answer}
    changes, planned = [], 0
    for decision in decisions:
        found = by_id.get(decision.feedback_id)
        if found is None:
            changes.append(
                {
                    "id": decision.id,
                    "status": "no_plan",
                    "assessed_at": now,
                    "note": "盈利能力评估未给出方案",
                }
            )
            continue
        planned += 1
        changes.append(
            {
                "id": decision.id,
                "status": "assessed",
                "assessed_at": now,
                "options": [_plan_dict(plan) for plan in found.options],
                "plan": found.best.name,
                "chosen": _plan_dict(found.best),
            }
        )
    _update(session, changes)
    audit.record(
        session,
        "assess",
        "coord_decisions",
        detail=f"协调评估反馈 {len(decisions)} 条，其中 {planned} 条得出方案",
    )
    return planned, len(decisions) - planned


def dispatch(session: Session, limit: int, now: dt.datetime) -> tuple[int, int]:
    """Hand up to `limit` assessed decisions' plans to service handling; returns
    (dispatched, not carried out). The work and the decisions commit together."""
    decisions = _claim(session, "assessed", limit)
    if not decisions:
        return 0, 0
    pm = session.info["pm"]
    instructions = [Instruction(d.id, _feedback(d), Plan.from_dict(d.chosen)) for d in decisions]
    answer = pm.hook.carry_out_plans(session=session, instructions=instructions, now=now)
    if answer is None:
        raise MissingStep(
            _missing_message(
                ["carry_out_plans"],
                f"插件没有执行方案；{len(decisions)} 条决策保持“已评估”，下次运行时继续。",
            )
        )
    by_id = {d.feedback_id: d for d in answer}
    changes, done = [], 0
    for decision in decisions:
        work = by_id.get(decision.feedback_id)
        if work is None:
            changes.append(
                {
                    "id": decision.id,
                    "status": "undispatched",
                    "dispatched_at": now,
                    "note": "服务处理未能执行该方案（反馈既没有对应的客户家庭，也没有对应的项目）",
                }
            )
            continue
        done += 1
        changes.append(
            {
                "id": decision.id,
                "status": "dispatched",
                "dispatched_at": now,
                "work_refs": list(work.references),
                "team": work.team,
                # the team's name beside the chosen plan, for the log people read
                "chosen": (decision.chosen or {}) | {"team_name": work.team_name},
            }
        )
    _update(session, changes)
    audit.record(
        session,
        "dispatch",
        "coord_decisions",
        detail=f"协调派工 {done} 条，未能执行 {len(decisions) - done} 条",
    )
    return done, len(decisions) - done


def refresh_outcomes(
    session: Session, now: dt.datetime, after_id: int, limit: int
) -> tuple[int, int]:
    """Ask service handling where the work of up to `limit` dispatched decisions (id above
    `after_id`) stands; an outcome that changed is recorded, and a decision whose work has
    all finished is closed with the customer's answers and whether they accepted. Returns
    (closed, last id looked at; 0 when none was left)."""
    decisions = session.execute(
        select(Decision.id, Decision.work_refs, Decision.outcome)
        .where(Decision.status == "dispatched", Decision.id > after_id)
        .order_by(Decision.id)
        .limit(limit)
    ).all()
    if not decisions:
        return 0, 0
    references = [ref for _, refs, _ in decisions for ref in refs or []]
    pm = session.info["pm"]
    states = pm.hook.dispatch_outcomes(session=session, references=references) or {}
    changes, closed = [], 0
    for decision_id, refs, known in decisions:
        outcome = {
            ref: states[ref].as_dict() if ref in states else {"status": "unknown"}
            for ref in refs or []
        }
        # Unchanged work is not rewritten: a watch re-reads every open decision each run.
        if outcome == known:
            continue
        change = {"id": decision_id, "outcome": outcome, "outcome_at": now}
        if outcome and all(state["status"] not in OPEN_WORK for state in outcome.values()):
            answers = [state.get("answer") for state in outcome.values() if state.get("answer")]
            verdicts = [state.get("accepted") for state in outcome.values()]
            change |= {
                "status": "closed",
                "closed_at": now,
                "answer": "；".join(answers) or None,
                "accepted": None if None in verdicts else all(verdicts),
            }
            closed += 1
        changes.append(change)
    if changes:
        _update(session, changes)
    if closed:
        audit.record(session, "close", "coord_decisions", detail=f"协调决策办结 {closed} 条")
    return closed, decisions[-1][0]


# --- one cycle --------------------------------------------------------------------------------


def _step(session: Session, report: CycleReport, work, *args) -> Any:
    """One step of one batch in a transaction of its own, committed with its effects."""
    started = time.perf_counter()
    try:
        with transaction(session):
            _write_lock(session)
            return work(session, *args)
    finally:
        spent = report.step_seconds.get(work.__name__, 0.0) + time.perf_counter() - started
        report.step_seconds[work.__name__] = spent


def _assess_batch(session: Session, batch: int, now: dt.datetime, report: CycleReport) -> bool:
    planned, none = _step(session, report, assess, batch, now)
    report.assessed += planned
    report.no_plan += none
    return bool(planned or none)


def _dispatch_batch(session: Session, batch: int, now: dt.datetime, report: CycleReport) -> bool:
    done, failed = _step(session, report, dispatch, batch, now)
    report.dispatched += done
    report.undispatched += failed
    return bool(done or failed)


def _finish_open_decisions(
    session: Session, batch: int, now: dt.datetime, report: CycleReport
) -> None:
    """Assess every collected decision, then dispatch every assessed one, a batch per
    transaction (these may be an earlier cycle's, or another cycle's, left to finish)."""
    while _assess_batch(session, batch, now, report):
        pass
    while _dispatch_batch(session, batch, now, report):
        pass


def run_cycle(
    session: Session,
    batch: int = BATCH,
    limit: int | None = None,
    now: dt.datetime | None = None,
) -> CycleReport:
    """One coordination cycle; commits each step of each batch (see the module docstring).
    `limit` caps the feedback records collected in this cycle. The session must not be in a
    transaction."""
    if batch < 1:
        raise CrmError("每批条数至少为 1。")
    if limit is not None and limit < 0:
        raise CrmError("本次最多收集的反馈条数不能为负数。")
    started = time.perf_counter()
    audit.current_user(session).require("coordination.run", "运行协调调度")
    pm = session.info["pm"]
    require_chain(pm)
    now = now or utcnow()
    report = CycleReport()
    if pm.hook.dispatch_outcomes.get_hookimpls():
        after = 0
        while True:
            closed, after = _step(session, report, refresh_outcomes, now, after, batch)
            report.closed += closed
            if not after:
                break
    # An earlier cycle's unfinished decisions first, so a crash is made good before new work.
    _finish_open_decisions(session, batch, now, report)
    while limit is None or report.collected < limit:
        size = batch if limit is None else min(batch, limit - report.collected)
        taken = _step(session, report, collect, size, now)
        if not taken:
            break
        report.collected += taken
        _assess_batch(session, batch, now, report)
        _dispatch_batch(session, batch, now, report)
    # What is still open: a batch another cycle collected meanwhile, or a smaller remainder.
    _finish_open_decisions(session, batch, now, report)
    report.seconds = time.perf_counter() - started
    return report


# --- the decision log -------------------------------------------------------------------------


def decision_row(decision: Decision) -> dict[str, Any]:
    chosen = decision.chosen or {}
    return {
        "id": decision.id,
        "feedback": decision.feedback_id,
        "source": decision.source,
        "household": decision.household_code,
        "project": decision.project,
        "answer": decision.answer,
        "accepted": decision.accepted,
        "reason": decision.reason,
        "strength": decision.strength,
        "status": decision.status,
        "options": decision.options or [],
        "plan": decision.plan,
        "plan_reason": chosen.get("reason"),
        "expected_value": chosen.get("expected_value"),
        "cost": chosen.get("cost"),
        "work": decision.work_refs or [],
        "team": decision.team,
        "team_name": chosen.get("team_name") or decision.team,
        # A decision logged before outcomes carried answers holds each work's status alone.
        "outcome": {
            ref: state if isinstance(state, dict) else {"status": state}
            for ref, state in (decision.outcome or {}).items()
        },
        "note": decision.note,
        "collected_at": decision.collected_at,
        "assessed_at": decision.assessed_at,
        "dispatched_at": decision.dispatched_at,
        "closed_at": decision.closed_at,
    }


def list_decisions(
    session: Session,
    status: str | None = None,
    household: str | None = None,
    plan: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> Page:
    """The decision log, newest first, filtered by status, household, plan and the time the
    feedback was collected ([since, until)): one page of it, with how many decisions match."""
    query = select(Decision).order_by(Decision.id.desc())
    if status:
        query = query.where(Decision.status == code_of(STATUSES, status, "决策状态"))
    if household:
        from crm.core.households import get_household

        query = query.where(Decision.household_code == get_household(session, household).code)
    if plan:
        query = query.where(Decision.plan == plan.strip())
    if since is not None:
        query = query.where(Decision.collected_at >= since)
    if until is not None:
        query = query.where(Decision.collected_at < until)
    return fetch(session, query, limit, offset, scalars=True).map(decision_row)
