"""Early warning (客情预警): households whose satisfaction falls, projects whose monthly
satisfaction rate drops, households who complain again or whose commitments were broken.

Each cause becomes one feedback record (sat_feedback) with a reason and a strength 0..1; its
`key` names the cause, so detecting again never duplicates it. Coordination takes pending
records through the `collect_feedback` hook.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session, aliased

from crm.core import audit
from crm.core.audit import current_user
from crm.core.chain import Feedback, ServiceSignal
from crm.core.clock import local_zone
from crm.core.errors import CrmError
from crm.core.models import Household, Project, utcnow
from crm.core.paging import Page, between, fetch
from crm.core.sqltime import month_of
from crm.plugins.satisfaction.models import FeedbackRecord, Survey
from crm.plugins.satisfaction.vocab import STATUSES


@dataclass(frozen=True)
class Thresholds:
    """What counts as a fall: tuned here, not scattered through the queries."""

    window_days: int = 30
    # Latest CSAT this many points below the household's earlier mean.
    csat_drop: float = 1.0
    # A project's monthly satisfaction rate falling by this share, with enough answers.
    rate_drop: float = 0.10
    min_month_surveys: int = 5
    months_back: int = 3


def detect_warnings(
    session: Session, now: dt.datetime | None = None, thresholds: Thresholds | None = None
) -> list[FeedbackRecord]:
    """Find every cause of concern and store those not yet recorded; returns the new ones."""
    current_user(session).require("satisfaction.record", "生成客情预警")
    now = now or utcnow()
    limits = thresholds or Thresholds()
    if limits.window_days < 1:
        raise CrmError("预警时间窗口至少为 1 天。")
    since = now - dt.timedelta(days=limits.window_days)
    pm = session.info.get("pm")
    signals: list[ServiceSignal] = []
    if pm is not None:
        for found in pm.hook.service_signals(session=session, since=since):
            signals.extend(found or [])
    candidates = (
        household_drops(session, since, limits)
        + project_drops(session, now, limits)
        + [_from_signal(signal) for signal in signals]
    )
    return _store_new(session, candidates, now)


def household_drops(
    session: Session, since: dt.datetime, limits: Thresholds
) -> list[FeedbackRecord]:
    """Households whose latest survey (taken since `since`) is clearly below their earlier
    ones, or whose experience fell short of their expectation (negative mean gap)."""
    rank = (
        func.row_number()
        .over(partition_by=Survey.household_id, order_by=(Survey.taken_at.desc(), Survey.id.desc()))
        .label("rank")
    )
    recent = select(Survey.household_id).where(Survey.taken_at >= since)
    ranked = (
        select(
            Survey.id,
            Survey.household_id,
            Survey.taken_at,
            Survey.csat,
            (Survey.gap_total * 1.0 / func.nullif(Survey.aspect_count, 0)).label("gap"),
            rank,
        )
        .where(Survey.household_id.in_(recent))
        .subquery()
    )
    latest = aliased(ranked, name="latest")
    earlier = aliased(ranked, name="earlier")
    rows = session.execute(
        select(
            latest.c.id,
            latest.c.household_id,
            latest.c.csat,
            func.avg(earlier.c.csat * 1.0).label("before"),
            latest.c.gap,
        )
        .outerjoin(
            earlier, and_(earlier.c.household_id == latest.c.household_id, earlier.c.rank > 1)
        )
        .where(latest.c.rank == 1, latest.c.taken_at >= since)
        .group_by(latest.c.id, latest.c.household_id, latest.c.csat, latest.c.gap)
    ).all()
    found = []
    for survey_id, household_id, csat, before, mean_gap in rows:
        reasons, strength = [], 0.0
        if csat is not None and before is not None and float(before) - csat >= limits.csat_drop:
            reasons.append(f"最近一次满意度评分 {csat} 分，明显低于此前平均 {float(before):.1f} 分")
            strength = max(strength, (float(before) - csat) / 4)
        if mean_gap is not None and float(mean_gap) < 0:
            reasons.append(f"体验低于期望（平均差距 {float(mean_gap):+.1f}）")
            strength = max(strength, 0.3 + -float(mean_gap) / 9 * 0.7)
        if reasons:
            found.append(
                FeedbackRecord(
                    key=f"satisfaction_drop:{household_id}:{survey_id}",
                    kind="satisfaction_drop",
                    household_id=household_id,
                    reason="客户" + "，".join(reasons) + "。",
                    strength=_clamp(strength),
                )
            )
    return found


def _month_start(moment: dt.datetime, back: int) -> dt.datetime:
    local = moment.astimezone(local_zone())
    month = local.year * 12 + local.month - 1 - back
    first = dt.datetime(month // 12, month % 12 + 1, 1, tzinfo=local_zone())
    return first.astimezone(dt.UTC)


def project_drops(session: Session, now: dt.datetime, limits: Thresholds) -> list[FeedbackRecord]:
    """Projects whose satisfaction rate in a month fell against the month before."""
    month = month_of(session, Survey.taken_at)
    satisfied = func.avg(case((Survey.csat >= 4, 1.0), else_=0.0))
    rows = session.execute(
        select(Survey.project_id, month.label("month"), satisfied, func.count(Survey.csat))
        .where(
            Survey.project_id.is_not(None),
            Survey.csat.is_not(None),
            Survey.taken_at >= _month_start(now, limits.months_back),
            Survey.taken_at <= now,
        )
        .group_by(Survey.project_id, month)
        .order_by(Survey.project_id, month)
    ).all()
    names = dict(session.execute(select(Project.id, Project.name)).all()) if rows else {}
    found, previous = [], None
    for project_id, label, rate, answers in rows:
        rate = float(rate)
        if (
            previous is not None
            and previous[0] == project_id
            and answers >= limits.min_month_surveys
            and previous[3] >= limits.min_month_surveys
            and float(previous[2]) - rate >= limits.rate_drop
        ):
            before = float(previous[2])
            found.append(
                FeedbackRecord(
                    key=f"project_drop:{project_id}:{label}",
                    kind="project_drop",
                    project_id=project_id,
                    reason=f"项目“{names.get(project_id, project_id)}”{label} 满意率 "
                    f"{rate:.0%}，比 {previous[1]} 的 {before:.0%} 下降 {before - rate:.0%}。",
                    strength=_clamp((before - rate) * 2),
                )
            )
        previous = (project_id, label, rate, answers)
    return found


def _from_signal(signal: ServiceSignal) -> FeedbackRecord:
    cause = signal.references[-1] if signal.references else signal.last_at.isoformat()
    base = {"repeat_complaint": 0.3, "broken_promise": 0.5}.get(signal.kind, 0.4)
    return FeedbackRecord(
        key=f"{signal.kind}:{signal.household_id}:{cause}",
        kind=signal.kind,
        household_id=signal.household_id,
        reason=signal.reason,
        strength=_clamp(base + 0.2 * (signal.count - 1)),
    )


def _clamp(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 2)


def _store_new(
    session: Session, candidates: list[FeedbackRecord], now: dt.datetime
) -> list[FeedbackRecord]:
    keys = {record.key for record in candidates}
    known = set(
        session.scalars(select(FeedbackRecord.key).where(FeedbackRecord.key.in_(keys))).all()
        if keys
        else ()
    )
    new = []
    for record in candidates:
        if record.key in known:
            continue
        known.add(record.key)
        record.status = "pending"
        record.detected_at = now
        session.add(record)
        new.append(record)
    session.flush()
    return new


# A household's warning is shown under the household's project.
_project_of_record = func.coalesce(FeedbackRecord.project_id, Household.project_id)


def list_warnings(
    session: Session,
    status: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Feedback records, newest and strongest first, detected in [since, until): one page of
    them, with how many match."""
    query = (
        select(FeedbackRecord, Household.code, Project.name)
        .outerjoin(Household, Household.id == FeedbackRecord.household_id)
        .outerjoin(Project, Project.id == _project_of_record)
        .where(*between(FeedbackRecord.detected_at, since, until))
        .order_by(
            FeedbackRecord.detected_at.desc(),
            FeedbackRecord.strength.desc(),
            FeedbackRecord.id.desc(),
        )
    )
    if status:
        if status not in STATUSES:
            raise CrmError(f"不认识的预警状态“{status}”；可用：{'、'.join(STATUSES)}。")
        query = query.where(FeedbackRecord.status == status)
    return fetch(session, query, limit, offset).map(lambda found: _warning_row(*found))


def _warning_row(record: FeedbackRecord, code: str | None, project: str | None) -> dict:
    return {
        "id": record.id,
        "kind": record.kind,
        "household": code,
        "project": project,
        "strength": record.strength,
        "reason": record.reason,
        "status": record.status,
        "detected_at": record.detected_at,
        "handed_at": record.handed_at,
    }


# Ids per UPDATE: under SQLite's oldest limit of 999 bound parameters.
HAND_CHUNK = 900


def _feedback_rows():
    """The columns a Feedback is made of, with the household's code and project for the log."""
    return (
        select(
            FeedbackRecord.id,
            FeedbackRecord.kind,
            FeedbackRecord.reason,
            FeedbackRecord.strength,
            FeedbackRecord.household_id,
            _project_of_record.label("project_id"),
            Household.code,
            Project.name,
        )
        .outerjoin(Household, Household.id == FeedbackRecord.household_id)
        .outerjoin(Project, Project.id == _project_of_record)
    )


def _as_feedback(row) -> Feedback:
    return Feedback(
        id=str(row.id),
        household_id=row.household_id,
        reason=row.reason,
        strength=row.strength,
        source=f"satisfaction.{row.kind}",
        project_id=row.project_id,
        household_code=row.code,
        project=row.name,
    )


def get_feedback(session: Session, feedback_id: str) -> Feedback | None:
    """One record by id, whatever its state (the `get_feedback` hook)."""
    if not str(feedback_id).isdigit():
        return None
    row = session.execute(_feedback_rows().where(FeedbackRecord.id == int(feedback_id))).first()
    return _as_feedback(row) if row is not None else None


def hand_feedback(session: Session, limit: int, now: dt.datetime | None = None) -> list[Feedback]:
    """Pending records, strongest first, as Feedback; each is marked handed at `now` so no
    later call hands it again. Set-based (one UPDATE, one audit entry per call): coordination
    pulls thousands per cycle."""
    now = now or utcnow()
    rows = session.execute(
        _feedback_rows()
        .where(FeedbackRecord.status == "pending")
        .order_by(FeedbackRecord.strength.desc(), FeedbackRecord.id)
        .limit(limit)
        # Two coordinators at once on PostgreSQL each take different records.
        .with_for_update(of=FeedbackRecord.__table__, skip_locked=True)
    ).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    for start in range(0, len(ids), HAND_CHUNK):
        session.execute(
            update(FeedbackRecord.__table__)
            .where(FeedbackRecord.__table__.c.id.in_(ids[start : start + HAND_CHUNK]))
            .values(status="handed", handed_at=now)
        )
    audit.record(
        session,
        "update",
        "sat_feedback",
        ids[0] if len(ids) == 1 else None,
        changes={"status": ["pending", "handed"], "records": len(ids)},
        detail=f"交给协调调度的反馈 {len(ids)} 条：编号 "
        + ",".join(map(str, ids[:50]))
        + ("…" if len(ids) > 50 else ""),
    )
    return [_as_feedback(row) for row in rows]
