"""Referral (老带新) and loyalty (一路同行) campaigns: the target rule, the schedule, the outreach
list each run writes, the contact attempts and the sales attributed to a campaign.

Segments and propensity scores come only through the `household_segments` and
`propensity_scores` hooks (the analysis plugin answers them); open complaints come from the
core service register, where service handling keeps an entry for every ticket (only customers
complain: the work the system makes for itself is not there).
A run lists each household at most once: UNIQUE(run_id, household_id) in the database and
insert-or-ignore on both backends, so a crashed run that is started again resumes its own list.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import and_, exists, func, or_, select, text
from sqlalchemy.orm import Session, aliased

from crm.core import audit
from crm.core.clock import add_months, as_local, local_today, to_local, when_done
from crm.core.db import begin_write
from crm.core.errors import CrmError, NotFound
from crm.core.households import first_owner_id
from crm.core.models import (
    Building,
    Household,
    Member,
    Project,
    Purchase,
    ServiceRecord,
    Unit,
    utcnow,
)
from crm.core.outfiles import csv_writer, output_file, write_xlsx
from crm.core.paging import Page, between, fetch, window
from crm.core.privacy import Disclosure, audit_guard, commit_audit, reads_sealed, reveal
from crm.core.schedule import Schedule, parse_every
from crm.core.vocab import code_of, label
from crm.plugins.campaigns.models import (
    Campaign,
    CampaignContact,
    CampaignRun,
    ContactAttempt,
)

KINDS = {"referral": "老带新", "loyalty": "一路同行"}
# What each kind of campaign hopes for, so a threshold given without a target means that.
DEFAULT_PROPENSITY_TARGET = {"referral": "refer", "loyalty": "buy_again"}
PROPENSITY_TARGETS = {"buy_again": "再次购买", "refer": "推荐新客"}
CHANNELS = {"phone": "电话", "sms": "短信", "wechat": "微信", "visit": "上门", "letter": "信函"}
# Channels whose message goes out with the run itself; a phone call or a home visit touches
# the household only when somebody actually reaches it.
DELIVERED_BY_RUN = {"sms", "wechat", "letter"}
OUTCOMES = {
    "answered": "已接通",
    "no_answer": "未接通",
    "declined": "拒绝",
    "interested": "有意向",
    "booked": "已预约",
}
NOT_REACHED = {"no_answer"}
# Lifecycle stages from a household's own purchase and handover dates.
STAGES = ("准客户", "已签约未交房", "交房一年内", "业主", "老业主")
OLD_OWNER_YEARS = 4  # one 四年之约 cycle after handover an owner counts as an old owner
PLACEHOLDERS = {
    "家庭": "客户家庭名称",
    "业主": "业主姓名",
    "项目": "所在项目",
    "编号": "客户编号",
    "活动": "活动名称",
}
DEFAULT_BATCH = 500
# Starts of one campaign less than this apart are one start (two schedulers, a scheduler and a
# person, a command typed twice, processes slow to load): the later joins the earlier's run.
JOIN_WINDOW = dt.timedelta(minutes=1)
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")

CAMPAIGN_COLUMNS = [
    ("code", "活动编号"),
    ("name", "活动名称"),
    ("kind", "类型"),
    ("channel", "渠道"),
    ("schedule", "排期"),
    ("active", "启用"),
    ("runs", "执行次数"),
    ("last_run", "最近执行"),
]
CAMPAIGN_LABELS = [
    ("code", "活动编号"),
    ("name", "活动名称"),
    ("kind", "类型"),
    ("channel", "渠道"),
    ("target", "目标规则"),
    ("schedule", "排期"),
    ("template", "话术模板"),
    ("attribution_days", "归因窗口（天）"),
    ("active", "启用"),
    ("created_by", "创建人"),
    ("runs", "执行次数"),
    ("last_run", "最近执行"),
]
RUN_LABELS = [
    ("run", "执行编号"),
    ("campaign", "活动编号"),
    ("resumed", "续跑"),
    ("audience", "名单户数"),
    ("added", "本次新增"),
    ("finished_at", "完成时间"),
    ("why_empty", "名单为空的原因"),
]
REPORT_COLUMNS = [
    ("run", "执行编号"),
    ("started_at", "开始时间"),
    ("finished", "已完成"),
    ("audience", "名单户数"),
    ("contacted", "已联系"),
    ("reached", "已触达"),
    ("outcomes", "最新结果分布"),
    ("purchases", "带来购买"),
    ("purchase_amount", "购买金额"),
    ("referrals", "带来推荐成交"),
    ("referral_amount", "推荐成交金额"),
]
CONTACT_COLUMNS = [
    ("run", "执行编号"),
    ("household", "客户编号"),
    ("name", "客户名称"),
    ("project", "项目"),
    ("owner", "业主"),
    ("phone", "联系电话"),
    ("caller", "外呼负责人"),
    ("segment", "客户分群"),
    ("score", "倾向评分"),
    ("message", "话术"),
    ("attempts", "联系次数"),
    ("outcome", "最新结果"),
]
ATTEMPT_LABELS = [
    ("run", "执行编号"),
    ("household", "客户编号"),
    ("at", "联系时间"),
    ("by", "联系人"),
    ("outcome", "结果"),
    ("note", "客户回应"),
]


# --- the target rule -----------------------------------------------------------------------


def normalise_rule(
    session: Session,
    kind: str,
    segments: Iterable[str] = (),
    min_propensity: float | None = None,
    propensity_target: str | None = None,
    projects: Iterable[str] = (),
    stages: Iterable[str] = (),
    quiet_days: int = 0,
) -> dict:
    """The stored form of a target rule, every part checked; a CrmError says what to fix."""
    rule: dict = {}
    names = sorted({name.strip() for name in segments if name.strip()})
    if names:
        rule["segments"] = names
    if propensity_target is not None and min_propensity is None:
        raise CrmError(
            "指定了倾向目标却没有门槛：请同时用 --min-propensity 给出 0 到 1 之间的分数。"
        )
    if min_propensity is not None:
        if not 0 < min_propensity < 1:
            raise CrmError(
                f"倾向评分门槛 {min_propensity} 无效：请给出 0 到 1 之间的小数，如 0.3。"
            )
        target = propensity_target or DEFAULT_PROPENSITY_TARGET[kind]
        target = code_of(PROPENSITY_TARGETS, target, "倾向目标")
        rule["propensity"] = {"target": target, "min": float(min_propensity)}
    wanted = sorted({name.strip() for name in projects if name.strip()})
    if wanted:
        known = set(session.scalars(select(Project.name).where(Project.name.in_(wanted))))
        missing = [name for name in wanted if name not in known]
        if missing:
            raise CrmError(f"没有名为“{'、'.join(missing)}”的项目：请核对项目名称。")
        rule["projects"] = wanted
    chosen = []
    for stage in stages:
        if stage.strip() not in STAGES:
            raise CrmError(f"不认识的客户阶段“{stage}”：可选 {'、'.join(STAGES)}。")
        chosen.append(stage.strip())
    if chosen:
        rule["stages"] = [stage for stage in STAGES if stage in chosen]
    if quiet_days < 0:
        raise CrmError(f"免打扰天数 {quiet_days} 无效：请给出 0 或正整数。")
    if quiet_days:
        rule["quiet_days"] = int(quiet_days)
    return rule


def describe_rule(rule: dict) -> str:
    """The target rule in one Chinese sentence, for `show` and `list`."""
    parts = []
    if rule.get("segments"):
        parts.append("分群：" + "、".join(rule["segments"]))
    if rule.get("propensity"):
        target = PROPENSITY_TARGETS[rule["propensity"]["target"]]
        parts.append(f"{target}倾向 ≥ {rule['propensity']['min']:g}")
    if rule.get("projects"):
        parts.append("项目：" + "、".join(rule["projects"]))
    if rule.get("stages"):
        parts.append("阶段：" + "、".join(rule["stages"]))
    if rule.get("quiet_days"):
        parts.append(f"{rule['quiet_days']} 天内已列入本活动名单的不再列入")
    parts.append("排除有未结投诉、未同意营销联系的客户")
    return "；".join(parts)


def _stage_condition(stage: str, today: dt.date):
    """SQL: the household is in `stage` through any of its purchases (or, for prospects, its status)."""
    if stage == "准客户":
        return Household.status == "prospective"
    own = Purchase.household_id == Household.id
    if stage == "已签约未交房":
        condition = and_(
            Purchase.purchase_date <= today,
            or_(Purchase.handover_date.is_(None), Purchase.handover_date > today),
        )
    elif stage == "交房一年内":
        condition = and_(
            Purchase.handover_date > add_months(today, -12), Purchase.handover_date <= today
        )
    elif stage == "业主":
        condition = and_(
            Purchase.handover_date > add_months(today, -12 * OLD_OWNER_YEARS),
            Purchase.handover_date <= add_months(today, -12),
        )
    else:  # 老业主
        condition = Purchase.handover_date <= add_months(today, -12 * OLD_OWNER_YEARS)
    return exists().where(own, condition)


def _project_condition(names: list[str]):
    bought_there = (
        select(Purchase.id)
        .join(Unit, Unit.id == Purchase.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .join(Project, Project.id == Building.project_id)
        .where(Purchase.household_id == Household.id, Project.name.in_(names))
        .exists()
    )
    registered_there = Household.project_id.in_(select(Project.id).where(Project.name.in_(names)))
    return or_(bought_there, registered_there)


def open_complaint_households(session: Session) -> set[int]:
    """Households with a complaint still open in the core service register (imported records
    and service handling's tickets alike)."""
    return set(
        session.scalars(
            select(ServiceRecord.household_id).where(
                ServiceRecord.kind == "complaint", ServiceRecord.status == "open"
            )
        )
    )


def _segments(session: Session) -> dict[int, str]:
    pm = session.info.get("pm")
    answer = pm.hook.household_segments(session=session) if pm is not None else None
    if not answer:
        raise CrmError("还没有客户分群结果，无法按分群圈定客户：请先运行 crm analysis segments。")
    return answer


def _scores(session: Session, target: str) -> dict[int, float]:
    pm = session.info.get("pm")
    answer = pm.hook.propensity_scores(session=session, target=target) if pm is not None else None
    if not answer:
        raise CrmError(
            f"还没有“{PROPENSITY_TARGETS[target]}”倾向评分，无法按倾向圈定客户："
            "请先运行 crm analysis propensity score。"
        )
    return answer


@dataclass
class Target:
    """Who a campaign reaches now, in household-id order, with the segment and score that
    selected each (None where the rule does not use them)."""

    household_ids: list[int]
    segments: dict[int, str] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    # (rule, households left after it), in the order the rule is applied: says which part of
    # the rule emptied a list.
    funnel: list[tuple[str, int]] = field(default_factory=list)
    # The propensity scores of the households the score floor was applied to.
    score_range: dict[str, float] | None = None

    def why_empty(self) -> str | None:
        """Why nobody is on the list, in one Chinese sentence (None when somebody is)."""
        if self.household_ids or not self.funnel:
            return None
        before = None
        for rule, left in self.funnel:
            if left == 0:
                text = f"名单为空：“{rule}”之后剩 0 户"
                if before is not None:
                    text += f"（之前 {before} 户）"
                if rule.startswith("倾向") and self.score_range:
                    r = self.score_range
                    text += (
                        f"；这些客户的倾向评分最高 {r['max']:.2f}，90% 分位 {r['p90']:.2f}，"
                        f"中位数 {r['median']:.2f}：请降低 --min-propensity"
                    )
                return text + "。"
            before = left
        return None


def target_households(session: Session, campaign: Campaign, now: dt.datetime) -> Target:
    """Households the campaign's rule selects at `now`: consent to contact and to marketing,
    no open complaint, then projects and stages in SQL, then segments and scores from hooks."""
    rule = campaign.target or {}
    today = local_today(now)
    funnel: list[tuple[str, int]] = []

    def count(label: str, query) -> None:
        funnel.append((label, session.scalar(select(func.count()).select_from(query.subquery()))))

    query = select(Household.id).where(
        Household.consent_contact.is_(True), Household.consent_marketing.is_(True)
    )
    count("同意联系与营销", query)
    if rule.get("projects"):
        query = query.where(_project_condition(rule["projects"]))
        count("项目：" + "、".join(rule["projects"]), query)
    if rule.get("stages"):
        query = query.where(or_(*(_stage_condition(s, today) for s in rule["stages"])))
        count("阶段：" + "、".join(rule["stages"]), query)
    if rule.get("quiet_days"):
        # Not to be disturbed again so soon: listed by a finished run of this campaign within
        # the quiet days. An unfinished run's own list is left to the resume.
        recent = (
            select(CampaignContact.household_id)
            .join(CampaignRun, CampaignRun.id == CampaignContact.run_id)
            .where(
                CampaignRun.campaign_id == campaign.id,
                CampaignRun.finished_at.is_not(None),
                CampaignContact.listed_at > now - dt.timedelta(days=rule["quiet_days"]),
            )
        )
        query = query.where(Household.id.not_in(recent))
        count(f"{rule['quiet_days']} 天内未列入本活动名单", query)
    excluded = open_complaint_households(session)
    ids = [hid for hid in session.scalars(query.order_by(Household.id)) if hid not in excluded]
    funnel.append(("没有未结投诉", len(ids)))
    segments: dict[int, str] = {}
    scores: dict[int, float] = {}
    score_range = None
    if rule.get("segments"):
        known = _segments(session)
        wanted = set(rule["segments"])
        if not wanted & set(known.values()):
            names = "、".join(sorted(set(known.values())))
            raise CrmError(
                f"最新分群中没有“{'、'.join(sorted(wanted))}”：现有分群为 {names}；"
                "请修改活动或重新运行 crm analysis segments。"
            )
        segments = {hid: known[hid] for hid in ids if known.get(hid) in wanted}
        ids = [hid for hid in ids if hid in segments]
        funnel.append(("分群：" + "、".join(rule["segments"]), len(ids)))
    if rule.get("propensity"):
        target = rule["propensity"]["target"]
        known_scores = _scores(session, target)
        floor = rule["propensity"]["min"]
        present = sorted(float(known_scores[h]) for h in ids if known_scores.get(h) is not None)
        if present:
            score_range = {
                "max": present[-1],
                "p90": present[int(0.9 * (len(present) - 1))],
                "median": present[(len(present) - 1) // 2],
            }
        scores = {
            hid: float(known_scores[hid])
            for hid in ids
            if known_scores.get(hid) is not None and known_scores[hid] >= floor
        }
        ids = [hid for hid in ids if hid in scores]
        funnel.append((f"倾向（{PROPENSITY_TARGETS[target]}）≥ {floor:g}", len(ids)))
    return Target(ids, segments, scores, funnel, score_range)


# --- templates and schedules ---------------------------------------------------------------


def check_template(template: str) -> str:
    """The template if every {占位符} is known; otherwise a CrmError naming the known ones."""
    if not template or not template.strip():
        raise CrmError("请用 --template 写明话术模板，如“{家庭}您好，{项目}老业主推荐有礼”。")
    allowed = "、".join(f"{{{name}}}（{what}）" for name, what in PLACEHOLDERS.items())
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        raise CrmError(
            f"话术模板的花括号不成对：占位符请写成 {allowed}；要显示花括号本身请写 {{{{ 或 }}}}。"
        ) from None
    for _text, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise CrmError(f"话术模板中的占位符“{{{name}}}”无效：可用的占位符有 {allowed}。")
    return template.strip()


def parse_local_time(text: str) -> dt.datetime:
    """A business-zone wall-clock time like 2026-12-01 09:00, as an aware UTC datetime."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CrmError(f"时间“{text}”无效：请写成 2026-12-01 09:00 这样的格式。") from None
    if moment.tzinfo is None:
        moment = as_local(moment)
    return moment.astimezone(dt.UTC)


def campaign_schedule(campaign: Campaign) -> Schedule | None:
    """When a scheduled campaign runs (None if it is run by hand). Interval runs count from the
    campaign's creation, so the run times stay put across restarts and syncs."""
    if campaign.schedule_kind == "once":
        return Schedule.once(campaign.run_at)
    if campaign.schedule_kind == "cron":
        return Schedule.crontab(campaign.cron)
    if campaign.schedule_kind == "interval":
        start = (campaign.created_at or utcnow()).replace(microsecond=0)
        return Schedule.every(campaign.interval_minutes, start=start)
    return None


def describe_schedule(campaign: Campaign) -> str:
    if campaign.schedule_kind == "once":
        return f"一次：{to_local(campaign.run_at).strftime('%Y-%m-%d %H:%M')}"
    if campaign.schedule_kind == "cron":
        return f"cron：{campaign.cron}"
    if campaign.schedule_kind == "interval":
        minutes = campaign.interval_minutes
        for size, unit in ((10080, "周"), (1440, "天"), (60, "小时")):
            if minutes % size == 0:
                return f"每 {minutes // size} {unit}"
        return f"每 {minutes} 分钟"
    return "手动执行"


# --- campaigns -----------------------------------------------------------------------------


def create_campaign(
    session: Session,
    code: str,
    name: str,
    kind: str,
    channel: str,
    template: str,
    rule: dict | None = None,
    at: str | None = None,
    cron: str | None = None,
    every: str | None = None,
    attribution_days: int = 90,
) -> Campaign:
    """Create a campaign after checking every part; `rule` comes from `normalise_rule`."""
    user = audit.current_user(session)
    user.require("campaign.manage", "创建营销活动")
    code = (code or "").strip()
    if not CODE_PATTERN.fullmatch(code):
        raise CrmError(f"活动编号“{code}”无效：请用不超过 40 个字母、数字、- 或 _，如 REF-2026Q4。")
    if session.scalar(select(Campaign.id).where(Campaign.code == code)) is not None:
        raise CrmError(
            f"活动编号“{code}”已存在：请换一个编号，或用 crm campaign show {code} 查看。"
        )
    if not name or not name.strip():
        raise CrmError("请用 --name 写明活动名称。")
    kind_code = code_of(KINDS, kind, "活动类型")
    channel_code = code_of(CHANNELS, channel, "联系渠道")
    if not 1 <= attribution_days <= 3650:
        raise CrmError(f"归因窗口 {attribution_days} 天无效：请给出 1 到 3650 之间的天数。")
    given = [
        option for option, value in (("--at", at), ("--cron", cron), ("--every", every)) if value
    ]
    if len(given) > 1:
        raise CrmError(f"排期只能选一种：{' 与 '.join(given)} 不能同时使用。")
    campaign = Campaign(
        code=code,
        name=name.strip(),
        kind=kind_code,
        target=rule if rule is not None else {},
        channel=channel_code,
        template=check_template(template),
        attribution_days=attribution_days,
        active=True,
        created_by=user.name,
        created_at=utcnow(),
    )
    if at:
        campaign.schedule_kind, campaign.run_at = "once", parse_local_time(at)
    elif cron:
        campaign.schedule_kind, campaign.cron = "cron", Schedule.crontab(cron).cron
    elif every:
        campaign.schedule_kind, campaign.interval_minutes = "interval", parse_every(every)
    session.add(campaign)
    session.flush()
    return campaign


def get_campaign(session: Session, code: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.code == (code or "").strip()))
    if campaign is None:
        raise NotFound(f"找不到活动编号“{code}”：请用 crm campaign list 查看已有活动。")
    return campaign


def set_active(session: Session, code: str, active: bool) -> Campaign:
    """Pause or resume a campaign's schedule (runs by hand stay possible)."""
    audit.current_user(session).require("campaign.manage", "暂停或恢复营销活动")
    campaign = get_campaign(session, code)
    campaign.active = active
    session.flush()
    return campaign


def _run_summary(session: Session, campaign: Campaign) -> tuple[int, dt.datetime | None]:
    count, last = session.execute(
        select(func.count(CampaignRun.id), func.max(CampaignRun.started_at)).where(
            CampaignRun.campaign_id == campaign.id
        )
    ).one()
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=dt.UTC)
    return count, last


def campaign_dict(session: Session, campaign: Campaign) -> dict:
    runs, last = _run_summary(session, campaign)
    return {
        "code": campaign.code,
        "name": campaign.name,
        "kind": label(KINDS, campaign.kind),
        "channel": label(CHANNELS, campaign.channel),
        "target": describe_rule(campaign.target or {}),
        "rule": campaign.target or {},
        "schedule": describe_schedule(campaign),
        "template": campaign.template,
        "attribution_days": campaign.attribution_days,
        "active": campaign.active,
        "created_by": campaign.created_by,
        "runs": runs,
        "last_run": last,
    }


def list_campaigns(session: Session, limit: int | None = None, offset: int = 0) -> Page:
    """Campaigns by code: one page of them, with how many."""
    query = select(Campaign).order_by(Campaign.code)
    page = fetch(session, query, limit, offset, scalars=True)
    return page.map(lambda campaign: campaign_dict(session, campaign))


# --- runs ----------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_id: int
    campaign: str
    resumed: bool
    audience: int
    added: int
    finished_at: dt.datetime
    why_empty: str | None = None  # when the list is empty: which rule emptied it

    def as_dict(self) -> dict:
        return {
            "run": self.run_id,
            "campaign": self.campaign,
            "resumed": self.resumed,
            "audience": self.audience,
            "added": self.added,
            "finished_at": self.finished_at,
            "why_empty": self.why_empty,
        }


def _insert_ignore(session: Session, table, rows: list[dict], keys: list[str]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on the unique key `keys`, on SQLite and PostgreSQL."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(table).on_conflict_do_nothing(index_elements=keys), rows)


def _household_details(
    session: Session, ids: list[int], projects: list[str] | None = None
) -> dict[int, tuple[str, str, str, str]]:
    """id -> (code, name, project, owner name) for rendering messages and listings. The
    project is that of the household's latest purchase, or where it registered; in a campaign
    for some projects, the latest purchase in one of them (a campaign for 滨江壹号 names
    滨江壹号 to an owner who has since also bought elsewhere)."""
    found: dict[int, tuple[str, str, str, str]] = {}
    # Chunks keep the IN lists under SQLite's bound-parameter limit on long outreach lists.
    for start in range(0, len(ids), 5000):
        found.update(_details_chunk(session, ids[start : start + 5000], projects))
    return found


def _details_chunk(
    session: Session, ids: list[int], projects: list[str] | None
) -> dict[int, tuple[str, str, str, str]]:
    purchases = select(Purchase.household_id, func.max(Purchase.id).label("purchase_id")).where(
        Purchase.household_id.in_(ids)
    )
    if projects:
        purchases = (
            purchases.join(Unit, Unit.id == Purchase.unit_id)
            .join(Building, Building.id == Unit.building_id)
            .join(Project, Project.id == Building.project_id)
            .where(Project.name.in_(projects))
        )
    latest = purchases.group_by(Purchase.household_id).subquery()
    bought = aliased(Project)
    registered = aliased(Project)
    rows = session.execute(
        select(Household.id, Household.code, Household.name, bought.name, registered.name)
        .outerjoin(latest, latest.c.household_id == Household.id)
        .outerjoin(Purchase, Purchase.id == latest.c.purchase_id)
        .outerjoin(Unit, Unit.id == Purchase.unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
        .outerjoin(bought, bought.id == Building.project_id)
        .outerjoin(registered, registered.id == Household.project_id)
        .where(Household.id.in_(ids))
    )
    owners: dict[int, str] = {}
    for household_id, name in session.execute(
        select(Member.household_id, Member.name)
        .where(Member.household_id.in_(ids), Member.role == "owner")
        .order_by(Member.id.desc())
    ):
        owners[household_id] = name  # descending ids: the first owner is written last
    if projects:  # where it registered counts only if the campaign is for that project
        rows = [(h, c, n, p, home if home in projects else None) for h, c, n, p, home in rows]
    return {
        hid: (code, name, project or home or "", owners.get(hid, name))
        for hid, code, name, project, home in rows
    }


def run_campaign(
    session: Session,
    code: str,
    now: dt.datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
    trigger: str = "manual",
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Write the campaign's outreach list: a new run, or the unfinished last run resumed.

    This is a long batch job and COMMITS: the run row first, then every batch of contacts,
    then the finish mark, so a crash loses at most one batch and the restart (which resumes
    the same run) skips the households already listed. `progress(listed, total)` is called
    after each committed batch.

    Starts of one campaign made together make one run: under the campaign's start lock, a
    start joins the run another start opened since it began, or less than JOIN_WINDOW before
    its own moment (finished or not), instead of opening another.
    """
    user = audit.current_user(session)
    user.require("campaign.manage", "执行营销活动")
    if batch_size < 1:
        raise CrmError("每批户数至少为 1：请把 --batch-size 设为正整数。")
    campaign = get_campaign(session, code)
    # The newest run this start can know of: a run opened after it, by a start racing this
    # one, is joined rather than doubled, even when that run has already finished.
    known = session.scalar(
        select(func.max(CampaignRun.id)).where(CampaignRun.campaign_id == campaign.id)
    )
    clock = now or utcnow()
    # Target before writing anything, so a refused rule (no segments yet …) leaves no run.
    target = target_households(session, campaign, clock)
    session.commit()  # the start lock opens a transaction of its own
    _lock_campaign(session, campaign.id)
    # An unfinished run is always the newest: no run can be opened beside it.
    run = session.scalar(
        select(CampaignRun)
        .where(CampaignRun.campaign_id == campaign.id)
        .order_by(CampaignRun.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    together = run is not None and (
        run.id > (known or 0) or abs(run.started_at - clock) < JOIN_WINDOW
    )
    if run is not None and run.finished_at is not None and not together:
        run = None  # the last run finished before this start: this is a run of its own
    if run is not None and run.finished_at is not None:
        # A start made together with this one has already written the whole list.
        audit.record(
            session,
            "campaign_run",
            "camp_runs",
            run.id,
            detail=f"营销活动 {campaign.code} 同时有另一次启动，本次并入其执行（名单 {run.audience} 户）",
        )
        session.commit()
        return RunResult(run.id, campaign.code, True, run.audience or 0, 0, run.finished_at)
    resumed = run is not None
    if run is None:
        # Under the start lock no other start can open one now; the unique open_for_campaign
        # would refuse it anyway.
        run = CampaignRun(
            campaign_id=campaign.id,
            started_at=clock,
            started_by=user.name,
            trigger=trigger,
            open_for_campaign=campaign.id,
        )
        session.add(run)
    if resumed:
        run.resumed += 1
    session.flush()
    audit.record(
        session,
        "campaign_run",
        "camp_runs",
        run.id,
        detail=f"{'续跑' if resumed else '执行'}营销活动 {campaign.code}：目标 {len(target.household_ids)} 户",
    )
    session.commit()
    listed = set(
        session.scalars(
            select(CampaignContact.household_id).where(CampaignContact.run_id == run.id)
        )
    )
    remaining = [hid for hid in target.household_ids if hid not in listed]
    added = 0
    for start in range(0, len(remaining), batch_size):
        batch = remaining[start : start + batch_size]
        details = _household_details(session, batch, (campaign.target or {}).get("projects"))
        listed_at = clock
        rows = []
        for hid in batch:
            household_code, name, project, owner = details[hid]
            values = {"家庭": name, "业主": owner, "项目": project, "编号": household_code,
                      "活动": campaign.name}  # fmt: skip
            rows.append(
                {
                    "run_id": run.id,
                    "household_id": hid,
                    "listed_at": listed_at,
                    "listed_on": to_local(listed_at).date(),
                    "message": campaign.template.format_map(values),
                    "segment": target.segments.get(hid),
                    "score": target.scores.get(hid),
                }
            )
        _insert_ignore(session, CampaignContact.__table__, rows, ["run_id", "household_id"])
        session.commit()
        added += len(batch)
        if progress is not None:
            progress(len(listed) + added, len(listed) + len(remaining))
    audience = session.scalar(
        select(func.count()).select_from(CampaignContact).where(CampaignContact.run_id == run.id)
    )
    run.audience = audience
    run.finished_at = utcnow() if now is None else now
    run.open_for_campaign = None
    audit.record(
        session,
        "campaign_run",
        "camp_runs",
        run.id,
        detail=f"营销活动 {campaign.code} 执行完成：名单 {audience} 户",
    )
    session.commit()
    why = target.why_empty() if audience == 0 else None
    return RunResult(run.id, campaign.code, resumed, audience, added, run.finished_at, why)


def _lock_campaign(session: Session, campaign_id: int) -> None:
    """Start a transaction holding the campaign's start lock, so the starts of one campaign
    decide one after another whether to open a run: the campaign row's lock on PostgreSQL,
    the write lock on SQLite (pysqlite would otherwise read before it locks)."""
    if session.get_bind().dialect.name == "sqlite":
        begin_write(session)
    else:
        session.execute(select(Campaign.id).where(Campaign.id == campaign_id).with_for_update())


def _run(session: Session, run_id: int) -> CampaignRun:
    run = session.get(CampaignRun, run_id)
    if run is None:
        raise NotFound(
            f"执行编号 {run_id} 不存在：请用 crm campaign report 活动编号 查看各次执行。"
        )
    return run


def record_attempt(
    session: Session,
    run_id: int,
    household_code: str,
    outcome: str,
    note: str | None = None,
    at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[ContactAttempt, str]:
    """Record one attempt to reach a household listed by a run, and its response: made `at`
    (typed in later), never in the future nor before the household was listed."""
    user = audit.current_user(session)
    user.require("household.write", "记录活动联系结果")
    run = _run(session, run_id)
    outcome_code = code_of(OUTCOMES, outcome, "联系结果")
    contact = session.scalar(
        select(CampaignContact)
        .join(Household, Household.id == CampaignContact.household_id)
        .where(CampaignContact.run_id == run.id, Household.code == household_code.strip())
    )
    if contact is None:
        raise NotFound(
            f"客户“{household_code}”不在执行 {run_id} 的名单上：请用 crm campaign contacts {run_id} 查看名单。"
        )
    at = when_done(at, now or utcnow(), contact.listed_at, "该客户列入名单的时间")
    attempt = ContactAttempt(
        contact_id=contact.id, at=at, by=user.name, outcome=outcome_code, note=note
    )
    session.add(attempt)
    session.flush()
    return attempt, household_code.strip()


def attempt_dict(attempt: ContactAttempt, run_id: int, household_code: str) -> dict:
    return {
        "run": run_id,
        "household": household_code,
        "at": attempt.at,
        "by": attempt.by,
        "outcome": label(OUTCOMES, attempt.outcome),
        "note": attempt.note,
    }


def assign_callers(
    session: Session, run_id: int, callers: Iterable[str], reassign: bool = False
) -> dict[str, int]:
    """Share a run's contacts among named callers, a manager's decision: in score order,
    one each in turn, so each caller gets as many and as good; contacts already assigned keep
    their caller unless `reassign`. Returns caller -> contacts given now. On PostgreSQL a
    caller is a database login with a CRM role (whom the database lets see those numbers)."""
    user = audit.current_user(session)
    user.require("campaign.assign", "分配外呼名单")
    run = _run(session, run_id)
    names = list(dict.fromkeys(name.strip() for name in callers if name.strip()))
    if not names:
        raise CrmError("请给出至少一位外呼负责人。")
    if session.get_bind().dialect.name == "postgresql":
        # The schema's owner, acting as users (--as), names them as it likes.
        known = text("SELECT crm_is_owner() OR crm_role_of(:name) IS NOT NULL")
        for name in names:
            if not session.scalar(known, {"name": name}):
                raise CrmError(
                    f"“{name}”不是有 CRM 角色的数据库登录：在 PostgreSQL 上外呼负责人须是员工的"
                    "登录名（crm staff logins）。"
                )
    query = select(CampaignContact).where(CampaignContact.run_id == run.id)
    if not reassign:
        query = query.where(CampaignContact.caller.is_(None))
    contacts = session.scalars(
        query.order_by(CampaignContact.score.desc().nulls_last(), CampaignContact.id)
    ).all()
    given = dict.fromkeys(names, 0)
    for number, contact in enumerate(contacts):
        contact.caller = names[number % len(names)]
        given[contact.caller] += 1
    audit.record(
        session,
        "assign",
        "camp_runs",
        run.id,
        detail=f"分配外呼名单 执行 {run.id}："
        + "、".join(f"{name} {count} 户" for name, count in given.items()),
    )
    session.flush()
    return given


def _assigned_tokens(session: Session, run_id: int, purpose: str) -> dict[int, tuple]:
    """The phone ciphertext of the first owners of the current user's own contacts in a run,
    with the audit entry for them; on PostgreSQL the database checks the assignment."""
    user = audit.current_user(session)
    if not reads_sealed(session):
        rows = session.execute(
            text("SELECT * FROM camp_reveal_assigned(:run, :purpose, :actor, :role)"),
            {"run": run_id, "purpose": purpose, "actor": user.name, "role": user.role},
        )
        return {row[0]: tuple(row[1:]) for row in rows}
    owners = session.scalars(
        select(first_owner_id())
        .select_from(CampaignContact)
        .join(Household, Household.id == CampaignContact.household_id)
        .where(CampaignContact.run_id == run_id, CampaignContact.caller == user.name)
    ).all()
    found = reveal(
        session, [o for o in owners if o is not None], f"{purpose}（本人负责的联系人，仅电话）"
    )
    return {member_id: (tokens[0], None, None) for member_id, tokens in found.items()}


def run_contacts(
    session: Session,
    run_id: int,
    outcome: str | None = None,
    mine: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> Page:
    """A run's outreach list, the most promising first (by score), with each household's
    caller, attempts and latest outcome; `mine`: only the current user's contacts. The owner's
    phone as the current user may see it: in full for managers, and for a caller on their own
    contacts; masked otherwise (full views audited). One page of it (only its phones are read),
    with how many contacts match."""
    run = _run(session, run_id)
    user = audit.current_user(session)
    wanted = code_of(OUTCOMES, outcome, "联系结果") if outcome else None
    latest: dict[int, tuple[str, int]] = {}
    for contact_id, result in session.execute(
        select(ContactAttempt.contact_id, ContactAttempt.outcome)
        .join(CampaignContact, CampaignContact.id == ContactAttempt.contact_id)
        .where(CampaignContact.run_id == run.id)
        .order_by(ContactAttempt.at, ContactAttempt.id)
    ):
        latest[contact_id] = (result, latest.get(contact_id, ("", 0))[1] + 1)
    owner = aliased(Member)
    first_owner = first_owner_id()
    query = (
        select(CampaignContact, Household.code, Household.name, owner)
        .join(Household, Household.id == CampaignContact.household_id)
        .outerjoin(owner, owner.id == first_owner)
        .where(CampaignContact.run_id == run.id)
        .order_by(CampaignContact.score.desc().nulls_last(), Household.code)
    )
    if mine:
        query = query.where(CampaignContact.caller == user.name)
    rows = []
    found = session.execute(query).all()
    found = window(
        [f for f in found if not wanted or latest.get(f[0].id, (None, 0))[0] == wanted],
        limit,
        offset,
    )
    projects = (session.get(Campaign, run.campaign_id).target or {}).get("projects")
    ids = [c.household_id for c, *_ in found]
    details = _household_details(session, ids, projects) if found else {}
    purpose = f"营销活动外呼名单 执行 {run.id}"
    with Disclosure(session, purpose) as disclosure:
        if not disclosure.full and any(contact.caller == user.name for contact, *_ in found):
            with audit_guard():
                disclosure.grant(_assigned_tokens(session, run.id, purpose))
        phones = disclosure.members([member for *_, member in found])
        for (contact, code, name, member), shown in zip(found, phones, strict=True):
            result, attempts = latest.get(contact.id, (None, 0))
            rows.append(
                {
                    "run": run.id,
                    "household": code,
                    "name": name,
                    "project": details[contact.household_id][2],
                    "owner": member.name if member else None,
                    "phone": shown["phone"],
                    "caller": contact.caller,
                    "segment": contact.segment,
                    "score": round(contact.score, 3) if contact.score is not None else None,
                    "message": contact.message,
                    "attempts": attempts,
                    "outcome": label(OUTCOMES, result) if result else None,
                }
            )
    return Page(rows, found.total, offset, limit)


def export_contacts(
    session: Session, run_id: int, path: Path, outcome: str | None = None, mine: bool = False
) -> int:
    """Write a run's outreach list to .csv or .xlsx (phones as in `run_contacts`); returns
    rows."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise CrmError(f"不支持导出为“{path.name}”：文件名请以 .csv 或 .xlsx 结尾。")
    audit.current_user(session).require("export", "导出活动外呼名单")
    rows = run_contacts(session, run_id, outcome, mine)
    headers = [title for _, title in CONTACT_COLUMNS]
    # The list's full views and the export are on record before the file gets a byte.
    with audit_guard():
        audit.record(
            session,
            "export",
            "camp_contacts",
            run_id,
            detail=f"营销活动外呼名单 执行 {run_id}：{len(rows)} 行",
        )
    commit_audit(session)
    table = [[row[key] for key, _ in CONTACT_COLUMNS] for row in rows]
    with output_file(path) as part:
        if suffix == ".csv":
            # utf-8-sig: Excel opens the Chinese text correctly only with the BOM.
            with part.open("w", encoding="utf-8-sig", newline="") as handle:
                writer = csv_writer(handle)
                writer.writerow(headers)
                writer.writerows(table)
        else:
            write_xlsx(part, headers, table, f"外呼名单{run_id}")
    return len(rows)


# --- attribution and the report ------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    purchase_id: int
    kind: str  # purchase (the contacted household bought) / referral (it named the buyer)
    run_id: int
    campaign_id: int
    household_id: int
    amount: Decimal


def attributions(session: Session) -> list[Attribution]:
    """Every purchase a campaign contact led to: a purchase by a touched household, or one
    naming it as referrer, on or after the touch day and within the campaign's window.
    When several touches qualify the latest wins, so no sale counts twice.

    A household is touched by a run when its message went out with the run (SMS, WeChat,
    letter) or, for calls and visits, at the first attempt that reached it.
    """
    reached = (
        select(ContactAttempt.contact_id, func.min(ContactAttempt.at).label("at"))
        .where(ContactAttempt.outcome.not_in(NOT_REACHED))
        .group_by(ContactAttempt.contact_id)
        .subquery()
    )
    candidates = []
    for kind, column in (
        ("purchase", Purchase.household_id),
        ("referral", Purchase.referrer_household_id),
    ):
        query = (
            select(
                Purchase.id,
                Purchase.purchase_date,
                Purchase.amount,
                CampaignContact.id,
                CampaignContact.household_id,
                CampaignContact.listed_at,
                reached.c.at,
                CampaignRun.id,
                Campaign.id,
                Campaign.channel,
                Campaign.attribution_days,
            )
            .join(CampaignContact, CampaignContact.household_id == column)
            .join(CampaignRun, CampaignRun.id == CampaignContact.run_id)
            .join(Campaign, Campaign.id == CampaignRun.campaign_id)
            .outerjoin(reached, reached.c.contact_id == CampaignContact.id)
            # A coarse bound in SQL (no touch comes before the listing); the exact one below.
            .where(Purchase.purchase_date >= CampaignContact.listed_on)
        )
        for row in session.execute(query):
            (pid, day, amount, contact_id, hid, listed_at, reached_at, run_id, cid, channel,
             window) = row  # fmt: skip
            touched = listed_at if channel in DELIVERED_BY_RUN else reached_at
            if touched is None:
                continue
            if touched.tzinfo is None:
                touched = touched.replace(tzinfo=dt.UTC)
            touched_on = to_local(touched).date()
            if touched_on <= day <= touched_on + dt.timedelta(days=window):
                candidates.append((pid, (touched, contact_id), kind, run_id, cid, hid, amount))
    best: dict[int, tuple] = {}
    for candidate in candidates:
        if candidate[0] not in best or candidate[1] > best[candidate[0]][1]:
            best[candidate[0]] = candidate
    return [
        Attribution(pid, kind, run_id, cid, hid, Decimal(amount))
        for pid, _touch, kind, run_id, cid, hid, amount in sorted(best.values())
    ]


def campaign_report(
    session: Session,
    code: str,
    limit: int | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Per run started in [since, until), oldest first: list size, households contacted and
    reached, their latest outcomes, and the purchases and referral sales attributed to the run
    (last touch). One page of the runs, with how many match; a run's figures do not depend on
    which runs are shown (attribution weighs every campaign's runs)."""
    campaign = get_campaign(session, code)
    query = (
        select(CampaignRun)
        .where(
            CampaignRun.campaign_id == campaign.id,
            *between(CampaignRun.started_at, since, until),
        )
        .order_by(CampaignRun.id)
    )
    runs = fetch(session, query, limit, offset, scalars=True)
    if not runs:
        return runs
    run_ids = [run.id for run in runs]
    audience = dict(
        session.execute(
            select(CampaignContact.run_id, func.count())
            .where(CampaignContact.run_id.in_(run_ids))
            .group_by(CampaignContact.run_id)
        ).all()
    )
    # One pass over the attempts gives each contact's latest outcome and whether any reached it.
    latest: dict[int, tuple[int, str]] = {}
    reached_ids: dict[int, set[int]] = defaultdict(set)
    for contact_id, run_id, outcome in session.execute(
        select(ContactAttempt.contact_id, CampaignContact.run_id, ContactAttempt.outcome)
        .join(CampaignContact, CampaignContact.id == ContactAttempt.contact_id)
        .where(CampaignContact.run_id.in_(run_ids))
        .order_by(ContactAttempt.at, ContactAttempt.id)
    ):
        latest[contact_id] = (run_id, outcome)
        if outcome not in NOT_REACHED:
            reached_ids[run_id].add(contact_id)
    outcomes: dict[int, Counter] = defaultdict(Counter)
    for run_id, outcome in latest.values():
        outcomes[run_id][outcome] += 1
    credited: dict[tuple[int, str], list[Decimal]] = defaultdict(list)
    for item in attributions(session):
        if item.campaign_id == campaign.id:
            credited[item.run_id, item.kind].append(item.amount)
    rows = []
    for run in runs:
        counts = outcomes.get(run.id, Counter())
        purchases = credited.get((run.id, "purchase"), [])
        referrals = credited.get((run.id, "referral"), [])
        rows.append(
            {
                "run": run.id,
                "started_at": run.started_at,
                "finished": run.finished_at is not None,
                "audience": audience.get(run.id, 0),
                "contacted": sum(counts.values()),
                "reached": len(reached_ids.get(run.id, ())),
                "outcomes": {OUTCOMES[code]: counts[code] for code in OUTCOMES if counts[code]},
                "purchases": len(purchases),
                "purchase_amount": sum(purchases, Decimal(0)),
                "referrals": len(referrals),
                "referral_amount": sum(referrals, Decimal(0)),
            }
        )
    return Page(rows, runs.total, runs.offset, runs.limit)
