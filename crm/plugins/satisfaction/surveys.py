"""Surveys: after a closed ticket (回访), periodic surveys and visit questionnaires (走访问卷).

Each survey may carry CSAT (1-5), would-recommend (0-10, for NPS) and expectation/experience
pairs per aspect; satisfaction = experience − expectation is stored per aspect and household.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, selectinload

from crm.core import audit, vocab
from crm.core.audit import current_user
from crm.core.chain import Revisit, VisitAnswers
from crm.core.clock import when_done
from crm.core.errors import CrmError
from crm.core.households import get_household
from crm.core.models import Household, Project, utcnow
from crm.core.paging import Page, between, fetch
from crm.plugins.satisfaction.models import Survey, SurveyAspect, TicketCause

SURVEY_KINDS = {"revisit": "工单回访", "periodic": "定期调查", "visit": "走访问卷"}
CATEGORIES = vocab.COMPLAINT_CATEGORIES
CHANNELS = vocab.SERVICE_CHANNELS
CSAT_RANGE = (1, 5)
NPS_RANGE = (0, 10)
ASPECT_RANGE = (1, 10)
CHUNK = 5000  # ids per IN list: PostgreSQL takes at most 65,535 parameters


@dataclass(frozen=True)
class SurveyContext:
    """Where a survey belongs, so KPIs group it with the tickets of the same project, team,
    category and month."""

    ticket_number: str | None = None
    project_id: int | None = None
    team: str | None = None
    category: str | None = None
    channel: str | None = None


def code_of(vocabulary: Mapping[str, str], text: str | None, what: str) -> str | None:
    """Accept a code or its Chinese label; None stays None."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    for code, zh in vocabulary.items():
        if text in (code, zh):
            return code
    choices = "、".join(f"{code}（{zh}）" for code, zh in vocabulary.items())
    raise CrmError(f"不认识的{what}“{text}”；可用：{choices}。")


def _check_range(value: int | None, bounds: tuple[int, int], what: str) -> None:
    if value is None:
        return
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CrmError(f"{what}应为 {low} 到 {high} 之间的整数，收到的是 {value!r}。")


def validate_answers(
    csat: int | None, nps: int | None, aspects: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Check the ranges; returns the aspects with trimmed names."""
    _check_range(csat, CSAT_RANGE, "满意度评分（CSAT）")
    _check_range(nps, NPS_RANGE, "推荐意愿（NPS）")
    clean: dict[str, tuple[int, int]] = {}
    for name, pair in aspects.items():
        aspect = (name or "").strip()
        if not aspect or len(aspect) > 40:
            raise CrmError("评价方面的名称不能为空且不超过 40 个字，如“维修质量”。")
        if aspect in clean:
            raise CrmError(f"评价方面“{aspect}”重复出现：每个方面只填一次期望与体验。")
        expectation, experience = pair
        _check_range(expectation, ASPECT_RANGE, f"“{aspect}”的期望分")
        _check_range(experience, ASPECT_RANGE, f"“{aspect}”的体验分")
        clean[aspect] = (expectation, experience)
    if csat is None and nps is None and not clean:
        raise CrmError("问卷没有任何答案：请至少填写满意度评分、推荐意愿或一个方面的期望与体验。")
    return clean


def parse_aspect(text: str) -> tuple[str, tuple[int, int]]:
    """`维修质量=8:6` -> ("维修质量", (8, 6)): expectation, then experience."""
    name, sep, scores = text.replace("＝", "=").replace("：", ":").partition("=")
    expectation, colon, experience = scores.partition(":")
    try:
        if not sep or not colon:
            raise ValueError
        return name.strip(), (int(expectation), int(experience))
    except ValueError:
        raise CrmError(
            f"无法读取评价方面“{text}”：请写成 名称=期望:体验，如 维修质量=8:6（1 到 10 分）。"
        ) from None


def record_survey(
    session: Session,
    household: Household,
    kind: str,
    csat: int | None = None,
    nps: int | None = None,
    aspects: Mapping[str, tuple[int, int]] | None = None,
    comment: str | None = None,
    context: SurveyContext | None = None,
    taken_by: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Survey:
    """Store one answered survey with its aspects (gap = experience − expectation): taken
    `at` (answers typed in later), recorded `now`."""
    current_user(session).require("satisfaction.record", "登记满意度调查")
    now = now or utcnow()
    if kind not in SURVEY_KINDS:
        raise CrmError(f"不认识的调查类型“{kind}”；可用：{'、'.join(SURVEY_KINDS)}。")
    clean = validate_answers(csat, nps, aspects or {})
    context = context or SurveyContext()
    survey = Survey(
        kind=kind,
        household_id=household.id,
        project_id=context.project_id if context.project_id is not None else household.project_id,
        ticket_number=context.ticket_number,
        team=context.team,
        category=context.category,
        channel=context.channel,
        taken_at=when_done(at, now),
        entered_at=now,
        csat=csat,
        nps=nps,
        comment=(comment or "").strip() or None,
        taken_by=taken_by or current_user(session).name,
        gap_total=sum(x - e for e, x in clean.values()) if clean else None,
        aspect_count=len(clean),
        aspects=[
            SurveyAspect(
                household_id=household.id,
                aspect=name,
                expectation=expectation,
                experience=experience,
                gap=experience - expectation,
            )
            for name, (expectation, experience) in clean.items()
        ],
    )
    session.add(survey)
    session.flush()
    return survey


def record_questionnaire(
    session: Session,
    household_code: str,
    kind: str,
    csat: int | None = None,
    nps: int | None = None,
    aspects: Mapping[str, tuple[int, int]] | None = None,
    comment: str | None = None,
    project: str | None = None,
    team: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Survey:
    """A periodic survey or a visit questionnaire, the household named by its code."""
    if kind == "revisit":
        raise CrmError("工单回访由服务处理在回访工单时自动登记；这里只登记定期调查或走访问卷。")
    household = get_household(session, household_code)
    project_id = None
    if project:
        project_id = session.scalar(select(Project.id).where(Project.name == project.strip()))
        if project_id is None:
            raise CrmError(f"找不到项目“{project}”：请写项目的完整名称。")
    context = SurveyContext(
        project_id=project_id,
        team=(team or "").strip() or None,
        category=code_of(CATEGORIES, category, "投诉类别"),
        channel=code_of(CHANNELS, channel, "渠道"),
    )
    return record_survey(
        session, household, kind, csat, nps, aspects, comment, context=context, now=now, at=at
    )


def survey_row(survey: Survey, household_code: str | None = None) -> dict:
    gaps = [a.gap for a in survey.aspects]
    return {
        "id": survey.id,
        "household": household_code,
        "kind": SURVEY_KINDS.get(survey.kind, survey.kind),
        "ticket": survey.ticket_number,
        "taken_at": survey.taken_at,
        "csat": survey.csat,
        "nps": survey.nps,
        "aspects": "；".join(
            f"{a.aspect} 期望{a.expectation} 体验{a.experience} 差距{a.gap:+d}"
            for a in survey.aspects
        ),
        "mean_gap": round(sum(gaps) / len(gaps), 2) if gaps else None,
        "comment": survey.comment,
        "taken_by": survey.taken_by,
    }


def list_surveys(
    session: Session,
    household_code: str | None = None,
    kind: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """The newest surveys first, optionally of one household or kind, taken in [since,
    until): one page of them, with how many match."""
    query = (
        select(Survey, Household.code)
        .join(Household, Household.id == Survey.household_id)
        .options(selectinload(Survey.aspects))
        .where(*between(Survey.taken_at, since, until))
        .order_by(Survey.taken_at.desc(), Survey.id.desc())
    )
    if household_code:
        query = query.where(Survey.household_id == get_household(session, household_code).id)
    if kind:
        query = query.where(Survey.kind == code_of(SURVEY_KINDS, kind, "调查类型"))
    return fetch(session, query, limit, offset).map(lambda found: survey_row(*found))


def record_revisits(session: Session, revisits: Sequence[Revisit]) -> None:
    """Revisits of closed tickets, told by service handling through `tickets_revisited`: one
    survey each, taken at the revisit time, written in bulk (one audit entry for the batch)."""
    current_user(session).require("satisfaction.record", "登记满意度调查")
    if not revisits:
        return
    projects: dict[int, int | None] = {}
    wanted = sorted({r.ticket.household_id for r in revisits})
    for start in range(0, len(wanted), CHUNK):
        projects.update(
            session.execute(
                select(Household.id, Household.project_id).where(
                    Household.id.in_(wanted[start : start + CHUNK])
                )
            ).all()
        )
    surveys, answers = [], []
    for revisit in revisits:
        ticket = revisit.ticket
        if ticket.household_id not in projects:
            raise CrmError(f"工单 {ticket.number} 的客户家庭不存在，无法登记回访。")
        clean = validate_answers(revisit.csat, revisit.nps, revisit.aspects)
        answers.append((ticket.household_id, clean))
        surveys.append(
            {
                "kind": "revisit",
                "household_id": ticket.household_id,
                # A ticket without a project still groups with its household's project.
                "project_id": ticket.project_id
                if ticket.project_id is not None
                else projects[ticket.household_id],
                "ticket_number": ticket.number,
                "team": ticket.team,
                "category": ticket.category,
                "channel": revisit.channel,
                "taken_at": revisit.at,
                "entered_at": revisit.entered_at or revisit.at,
                "csat": revisit.csat,
                "nps": revisit.nps,
                "comment": (revisit.comment or "").strip() or None,
                "taken_by": revisit.actor,
                "gap_total": sum(x - e for e, x in clean.values()) if clean else None,
                "aspect_count": len(clean),
            }
        )
    # Core inserts on the tables: the ORM's bulk path costs more per row than the database.
    table = Survey.__table__
    ids = list(
        session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), surveys)
    )
    aspects = [
        {
            "survey_id": survey_id,
            "household_id": household_id,
            "aspect": name,
            "expectation": expectation,
            "experience": experience,
            "gap": experience - expectation,
        }
        for survey_id, (household_id, clean) in zip(ids, answers, strict=True)
        for name, (expectation, experience) in clean.items()
    ]
    if aspects:
        session.execute(insert(SurveyAspect.__table__), aspects)
    numbers = [r.ticket.number for r in revisits]
    audit.record(
        session,
        "create",
        "sat_surveys",
        entity_id=ids[0] if len(ids) == 1 else None,
        changes={"kind": "revisit", "surveys": len(ids), "aspects": len(aspects)},
        detail=f"工单回访满意度调查 {len(ids)} 份："
        + "、".join(numbers[:3])
        + (" 等" if len(numbers) > 3 else ""),
    )


def record_visits(session: Session, visits: Sequence[VisitAnswers]) -> list[Survey]:
    """Satisfaction given on visits, told by the visit programme through `households_visited`:
    one visit questionnaire each, taken at the visit, so early warning and the KPIs read it
    like any other survey. A corrected visit's answers replace the survey of the visit it
    corrects (withdrawn when the correction gives no score); returns the surveys kept."""
    current_user(session).require("satisfaction.record", "登记满意度调查")
    kept = []
    for visit in visits:
        if visit.csat is not None:
            validate_answers(visit.csat, None, {})
        household = session.get(Household, visit.household_id)
        if household is None:
            raise CrmError(f"走访的客户家庭（编号 {visit.household_id}）不存在，无法登记满意度。")
        survey = None
        if visit.replaces:
            survey = session.scalar(
                select(Survey)
                .where(Survey.kind == "visit", Survey.reference == visit.replaces)
                .limit(1)
            )
        if visit.csat is None:
            if survey is not None:
                session.delete(survey)
            continue
        if survey is None:
            survey = Survey(kind="visit", household_id=household.id, aspect_count=0)
            session.add(survey)
        survey.project_id = (
            visit.project_id if visit.project_id is not None else household.project_id
        )
        survey.channel = "visit"
        survey.reference = visit.reference
        survey.taken_at = visit.at
        survey.entered_at = visit.entered_at or visit.at
        survey.csat = visit.csat
        survey.comment = (visit.comment or "").strip() or None
        survey.taken_by = visit.actor
        kept.append(survey)
    session.flush()
    return kept


def satisfaction_gap_per_household(session: Session, until: dt.datetime) -> dict[int, float]:
    """Mean gap (experience − expectation) over every aspect a household rated in surveys
    taken before `until` (analysis features); households without rated aspects are absent."""
    rows = session.execute(
        select(Survey.household_id, func.sum(Survey.gap_total), func.sum(Survey.aspect_count))
        .where(Survey.taken_at < until, Survey.aspect_count > 0)
        .group_by(Survey.household_id)
    )
    return {household_id: float(total) / count for household_id, total, count in rows if count}


def record_ticket_causes(session: Session, causes: Mapping[str, Sequence[str]]) -> None:
    """Keep why each complaint's customer complained (register number -> cause codes), so
    the KPIs group the ticket's surveys by cause; a cause already kept is not added again."""
    numbers = list(causes)
    known: set[tuple[str, str]] = set()
    for start in range(0, len(numbers), CHUNK):
        known |= set(
            session.execute(
                select(TicketCause.ticket_number, TicketCause.cause).where(
                    TicketCause.ticket_number.in_(numbers[start : start + CHUNK])
                )
            ).all()
        )
    rows = [
        {"ticket_number": number, "cause": cause}
        for number, codes in causes.items()
        for cause in dict.fromkeys(codes)
        if (number, cause) not in known and cause in vocab.COMPLAINT_CAUSES
    ]
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(TicketCause), rows[start : start + CHUNK])
