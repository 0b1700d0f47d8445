"""The 6+2 lifecycle (DOMAIN.md "Lifecycle"): touchpoints scheduled from each household's own
dates — first contact, signing, construction, move-in, the care call a month after move-in,
the notice before the warranty ends and the yearly move-in anniversary. The eighth, 四年之约,
is the revisit programme (revisits.py).

`plan_touchpoints` stores what falls due up to a day; UNIQUE(household_id, kind, due_on) with
insert-or-ignore makes planning again (by hand or by the daily scheduler job) add nothing twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from crm.core import audit
from crm.core.clock import add_months, day_start, local_today, to_local, when_done
from crm.core.errors import CrmError, NotFound
from crm.core.households import first_owner_id
from crm.core.models import Building, Household, Member, Project, Purchase, Unit, utcnow
from crm.core.paging import Page, fetch
from crm.core.privacy import Disclosure
from crm.core.settings import IntSetting
from crm.core.vocab import code_of, label
from crm.plugins.campaigns.campaigns import CHANNELS, OUTCOMES, _insert_ignore
from crm.plugins.campaigns.models import Touchpoint

WARRANTY_MONTHS_KEY = "campaigns.warranty_months"
NOTICE_DAYS_KEY = "campaigns.warranty_notice_days"
DEFAULT_WARRANTY_MONTHS = 24  # the usual two-year warranty on fittings and equipment
DEFAULT_NOTICE_DAYS = 60
# A plan also picks up what fell due this many days ago, so a day the scheduler missed is not
# lost; older dates are history, not a to-do.
LOOKBACK_DAYS = 30
BATCH = 1000


@dataclass(frozen=True)
class Rule:
    """One touchpoint kind: due `months` and `days` after its anchor date."""

    kind: str
    name: str
    anchor: str  # registered / purchase_date / handover_date
    months: int
    days: int
    channel: str
    script: str


RULES = (
    Rule("welcome", "温馨牵手", "registered", 0, 1, "phone",
         "{家庭}您好，感谢您关注{项目}，我是您的置业顾问，有任何问题随时找我。"),
    Rule("signing", "喜结连理", "purchase_date", 0, 0, "sms",
         "恭喜{家庭}签约{项目}！从签约到交房，我们全程陪伴。"),
    Rule("construction", "亲密接触", "purchase_date", 3, 0, "phone",
         "邀请{家庭}参加{项目}工地开放日，看看新家的施工进度。"),
    Rule("move_in", "乔迁", "handover_date", 0, 0, "visit",
         "恭贺{家庭}乔迁{项目}新居，上门送入伙礼并核对交付问题。"),
    Rule("care", "嘘寒问暖", "handover_date", 1, 0, "phone",
         "{家庭}入住{项目}一个月了，请问房屋使用和物业服务是否满意？"),
    # months/days are filled from the warranty settings when planning.
    Rule("warranty", "承担责任", "handover_date", 0, 0, "phone",
         "{家庭}您好，{项目}房屋保修期将于{保修到期}结束，有需要维修的问题请尽快报修。"),
    Rule("anniversary", "一路同行", "handover_date", 12, 0, "wechat",
         "{家庭}，今天是您入住{项目}{周年}周年，感谢一路同行！"),
    # 四年之约: the visit itself is listed and recorded by revisits.py; this is the call a
    # month before each fourth anniversary that agrees its time (DOMAIN.md "Customer visits").
    Rule("four_year", "四年之约", "handover_date", 47, 0, "phone",
         "{家庭}您好，您入住{项目}即将满{周年}年，按“四年之约”我们将上门走访，请问哪天方便？"),
)  # fmt: skip
# Every so many years after handover a rule recurs: kind -> years between touchpoints.
RECURRING_YEARS = {"anniversary": 1, "four_year": 4}
KIND_NAMES = {rule.kind: rule.name for rule in RULES}
TOUCHPOINT_COLUMNS = [
    ("id", "编号"),
    ("due_on", "到期日"),
    ("kind", "触点"),
    ("household", "客户编号"),
    ("name", "客户名称"),
    ("project", "项目"),
    ("owner", "业主"),
    ("phone", "联系电话"),
    ("channel", "渠道"),
    ("script", "话术"),
    ("overdue_days", "逾期天数"),
    ("outcome", "结果"),
]


WARRANTY_MONTHS = IntSetting(
    WARRANTY_MONTHS_KEY, DEFAULT_WARRANTY_MONTHS, "保修期的月数", low=1, high=120
)
NOTICE_DAYS = IntSetting(
    NOTICE_DAYS_KEY, DEFAULT_NOTICE_DAYS, "保修到期前提前通知的天数", low=0, high=365
)


def warranty_settings(session: Session) -> tuple[int, int]:
    """(warranty months, notice days) stored in the database, else the defaults."""
    return WARRANTY_MONTHS.read(session), NOTICE_DAYS.read(session)


def set_warranty_settings(session: Session, months: int | None, notice_days: int | None) -> None:
    """Keep the warranty period and notice in the database, so the daily job plans alike: a
    manager's setting, audited (each given value checked before either is stored)."""
    given = [
        (s, v) for s, v in ((WARRANTY_MONTHS, months), (NOTICE_DAYS, notice_days)) if v is not None
    ]
    if not given:
        return
    audit.current_user(session).require("service.configure", "修改保修期与提前通知天数")
    for setting, value in given:
        setting.parse(value)
    for setting, value in given:
        setting.write(session, value)
    session.flush()


def _anchor_rows(session: Session, rule: Rule, low: dt.date, high: dt.date):
    """(household id, purchase id, anchor day, household name, project, handover) for anchors
    in [low, high] of households that agreed to be contacted."""
    project = aliased(Project)
    if rule.anchor == "registered":
        start, end = day_start(low), day_start(high + dt.timedelta(days=1))
        query = (
            select(Household.id, Household.created_at, Household.name, project.name)
            .outerjoin(project, project.id == Household.project_id)
            .where(
                Household.status == "prospective",
                Household.consent_contact.is_(True),
                Household.created_at >= start,
                Household.created_at < end,
            )
        )
        for hid, created, name, project_name in session.execute(query):
            yield hid, None, to_local(created).date(), name, project_name or "", None
        return
    anchor = getattr(Purchase, rule.anchor)
    query = (
        select(
            Purchase.household_id, Purchase.id, anchor, Household.name, project.name,
            Purchase.handover_date,
        )
        .join(Household, Household.id == Purchase.household_id)
        .outerjoin(Unit, Unit.id == Purchase.unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
        .outerjoin(project, project.id == Building.project_id)
        .where(Household.consent_contact.is_(True), anchor >= low, anchor <= high)
    )  # fmt: skip
    for hid, pid, day, name, project_name, handover in session.execute(query):
        yield hid, pid, day, name, project_name or "", handover


def _candidates(session: Session, rule: Rule, since: dt.date, until: dt.date):
    """(household id, purchase id, due day, script) for every touchpoint of `rule` due in
    [since, until]. Anchors are fetched by a range that month lengths cannot miss, then each
    due day is computed exactly."""
    if rule.kind in RECURRING_YEARS:
        earliest = session.scalar(select(func.min(Purchase.handover_date)))
        if earliest is None:
            return
        step = RECURRING_YEARS[rule.kind]
        # One step past the last year: a touchpoint due before its anniversary (四年之约's call)
        # falls in `until` while the anniversary itself is next year.
        for years in range(step, until.year - earliest.year + 1 + step, step):
            # rule.months is the first occurrence; each later one comes `step` years on.
            months = rule.months + 12 * (years - step)
            shifted = Rule(rule.kind, rule.name, rule.anchor, months, 0, rule.channel, rule.script)
            for hid, pid, due, values in _due_rows(session, shifted, since, until):
                yield hid, pid, due, rule.script.format_map({**values, "周年": years})
        return
    for hid, pid, due, values in _due_rows(session, rule, since, until):
        handover = values["handover"]
        if rule.kind == "construction" and handover is not None and handover <= due:
            continue  # handed over already: no construction-site contact
        if rule.kind == "warranty":
            values["保修到期"] = values["warranty_end"].isoformat()
        yield hid, pid, due, rule.script.format_map(values)


def _due_rows(session: Session, rule: Rule, since: dt.date, until: dt.date):
    longest = rule.months * 31 + max(rule.days, 0)
    shortest = rule.months * 28 + min(rule.days, 0)
    low = since - dt.timedelta(days=longest + 1)
    high = until - dt.timedelta(days=shortest - 1)
    for hid, pid, anchor, name, project, handover in _anchor_rows(session, rule, low, high):
        if anchor is None:
            continue
        due = add_months(anchor, rule.months) + dt.timedelta(days=rule.days)
        if since <= due <= until:
            values = {"家庭": name, "项目": project, "handover": handover}
            if rule.kind == "warranty":
                values["warranty_end"] = add_months(anchor, rule.months)
            yield hid, pid, due, values


def plan_touchpoints(
    session: Session,
    until: dt.date,
    now: dt.datetime | None = None,
    since: dt.date | None = None,
    kinds: tuple[str, ...] | None = None,
) -> dict[str, int]:
    """Store every touchpoint due from `since` (default: LOOKBACK_DAYS before today) up to
    `until`; existing ones are left as they are. Returns kind -> touchpoints added."""
    audit.current_user(session).require("campaign.manage", "安排客户生命周期触点")
    today = local_today(now)
    since = since or today - dt.timedelta(days=LOOKBACK_DAYS)
    if until < since:
        raise CrmError(f"安排截止日 {until} 早于起始日 {since}：请给出更晚的日期。")
    months, notice = warranty_settings(session)
    added: dict[str, int] = {}
    for rule in RULES:
        if kinds and rule.kind not in kinds:
            continue
        if rule.kind == "warranty":
            rule = Rule(
                rule.kind, rule.name, rule.anchor, months, -notice, rule.channel, rule.script
            )
        before = _count(session, rule.kind)
        batch: list[dict] = []
        for hid, pid, due, script in _candidates(session, rule, since, until):
            batch.append(
                {
                    "household_id": hid,
                    "purchase_id": pid,
                    "kind": rule.kind,
                    "due_on": due,
                    "channel": rule.channel,
                    "script": script,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
            )
            if len(batch) >= BATCH:
                _insert_ignore(
                    session, Touchpoint.__table__, batch, ["household_id", "kind", "due_on"]
                )
                batch = []
        _insert_ignore(session, Touchpoint.__table__, batch, ["household_id", "kind", "due_on"])
        added[rule.kind] = _count(session, rule.kind) - before
    total = sum(added.values())
    audit.record(
        session, "plan", "camp_touchpoints", detail=f"安排生命周期触点至 {until}：新增 {total} 个"
    )
    return added


def _count(session: Session, kind: str) -> int:
    return session.scalar(
        select(func.count()).select_from(Touchpoint).where(Touchpoint.kind == kind)
    )


def kind_code(text: str) -> str:
    """A touchpoint kind from its code or Chinese name."""
    return code_of(KIND_NAMES, text, "触点类型")


def list_touchpoints(
    session: Session,
    due_within: int = 7,
    kind: str | None = None,
    include_done: bool = False,
    now: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Page:
    """Touchpoints due by today + `due_within` days (overdue ones first), with the owner's
    phone as the current user may see it: one page of them (only its phones are read and
    audited), with how many."""
    if due_within < 0:
        raise CrmError("--due-within 不能为负数：请给出 0 或更多天。")
    today = local_today(now)
    owner = aliased(Member)
    first_owner = first_owner_id()
    project = aliased(Project)
    query = (
        select(Touchpoint, Household.code, Household.name, project.name, owner)
        .join(Household, Household.id == Touchpoint.household_id)
        .outerjoin(Purchase, Purchase.id == Touchpoint.purchase_id)
        .outerjoin(Unit, Unit.id == Purchase.unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
        .outerjoin(project, project.id == Building.project_id)
        .outerjoin(owner, owner.id == first_owner)
        .where(Touchpoint.due_on <= today + dt.timedelta(days=due_within))
        .order_by(Touchpoint.due_on, Household.code, Touchpoint.kind)
    )
    if kind:
        query = query.where(Touchpoint.kind == kind_code(kind))
    if not include_done:
        query = query.where(Touchpoint.done_at.is_(None))
    rows = []
    with Disclosure(session, "生命周期触点名单") as disclosure:
        found = fetch(session, query, limit, offset)
        phones = disclosure.members([member for *_, member in found])
        for (point, code, name, project_name, member), shown in zip(found, phones, strict=True):
            rows.append(
                {
                    "id": point.id,
                    "due_on": point.due_on,
                    "kind": KIND_NAMES.get(point.kind, point.kind),
                    "household": code,
                    "name": name,
                    "project": project_name,
                    "owner": member.name if member else None,
                    "phone": shown["phone"],
                    "channel": label(CHANNELS, point.channel),
                    "script": point.script,
                    "overdue_days": max((today - point.due_on).days, 0),
                    "outcome": label(OUTCOMES, point.outcome) if point.outcome else None,
                }
            )
    return Page(rows, found.total, offset, limit)


def record_touchpoint(
    session: Session,
    touchpoint_id: int,
    outcome: str,
    note: str | None = None,
    at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Touchpoint:
    """Mark a touchpoint done with its outcome and the customer's response: done `at` (typed
    in later), never in the future."""
    user = audit.current_user(session)
    user.require("household.write", "登记生命周期触点结果")
    point = session.get(Touchpoint, touchpoint_id)
    if point is None:
        raise NotFound(f"触点 {touchpoint_id} 不存在：请用 crm campaign touchpoints 查看编号。")
    if point.done_at is not None:
        raise CrmError(
            f"触点 {touchpoint_id} 已于 {to_local(point.done_at):%Y-%m-%d %H:%M} 登记完成。"
        )
    point.outcome = code_of(OUTCOMES, outcome, "联系结果")
    point.note = note
    point.done_at = when_done(at, now or utcnow())
    point.done_by = user.name
    session.flush()
    return point
