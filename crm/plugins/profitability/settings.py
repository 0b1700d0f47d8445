"""Rates, costs and the plan catalogue of profitability assessment, stored in the core
`settings` table under `profitability.*` keys; a key never set reads its default below.
A manager changes them with `crm profitability settings set KEY VALUE`.

Defaults (yuan; a "year" is a year of the horizon):

| key                              | default | meaning                                                  |
|----------------------------------|---------|----------------------------------------------------------|
| horizon_years                    | 5       | how far ahead lifetime value looks                       |
| discount_rate                    | 0.08    | annual discount rate of future cash flows                |
| unit                             | months  | time unit of the purchase models (homes: months)         |
| purchase_model                   | mbgnbd  | purchase-count model: mbgnbd (MBG/NBD, a customer may    |
|                                  |         | drop out right after any purchase, the first included)   |
|                                  |         | or bgnbd (BG/NBD, only after a repeat purchase)          |
| sales_margin                     | 0.15    | gross margin on a home sale                              |
| prospect_conversion              | 0.15    | chance a prospective household buys within a year        |
|                                  |         | (DOMAIN: selling to a new customer succeeds 15 %)        |
| property_fee_per_m2_month        | 2.5     | property-management fee per m² and month                 |
| property_margin                  | 0.10    | margin on property-management fees                       |
| referral_cost_rate               | 0.01    | what a referral costs as a share of the referred sale    |
|                                  |         | (the referrer's reward and the new buyer's discount)     |
| referral_credit                  | 1.0     | share of a referred sale's margin (sales margin less the |
|                                  |         | referral cost) credited to the referrer, once; lower it  |
|                                  |         | if some referred buyers would have come anyway           |
| hourly_cost                      | 120     | fully loaded cost of one staff hour in after-sales       |
|                                  |         | service (wage, social insurance, overhead)               |
| handling_hours.general/important/hot/major | 2 / 6 / 12 / 40 | staff hours to handle a ticket by severity, |
|                                  |         | all steps and people (a major one has the emergency group) |
| record_hours.<kind>              | see RECORD_HOURS | staff hours per service record on the tracking   |
|                                  |         | card (complaint 3, repair 2, property service 1, …)      |
| club_cost_per_year               | 150     | member-club (万客会) running cost per member household   |
| min_exposure_years               | 2       | shortest history a yearly rate is taken over, so one     |
|                                  |         | early ticket is not read as a yearly habit               |
| cost_window_years                | 2       | the yearly cost and fee rates and the realized           |
|                                  |         | relationship profit read the last N years of service     |
|                                  |         | history (not before the register's first entry)          |
| plans.<code>.<field>             | PLANS   | the plan catalogue: cost, team, task,                    |
|                                  |         | retention_gain, referral_gain, suits, enabled            |

Plans (gains are for a feedback of strength 1 of a kind the plan suits; a weaker feedback
scales them down, a kind the plan does not suit halves them). A household's feedback is
answered by a household plan, a project's (its monthly satisfaction rate fell) by a project
plan, valued against the project's households together. Service handling gives the plan's
task to staff of the plan's team kind (a manager for supervision and improvement):

| code               | plan       | scope     | cost | team             | task            | retention | referral | suits                             |
|--------------------|------------|-----------|------|------------------|-----------------|-----------|----------|-----------------------------------|
| phone_revisit      | 电话回访   | household | 30   | customer_service | call            | 0.01      | 0.005    | satisfaction_drop                 |
| apology_visit      | 道歉回访   | household | 200  | customer_service | apology_visit   | 0.04      | 0.01     | broken_promise, satisfaction_drop |
| priority_repair    | 优先维修   | household | 800  | technical        | priority_repair | 0.06      | 0.01     | repeat_complaint                  |
| loyalty_gift       | 忠诚礼品   | household | 500  | customer_service | gift            | 0.03      | 0.02     | satisfaction_drop                 |
| compensation       | 经济补偿   | household | 3000 | customer_service | compensation    | 0.10      | 0.005    | broken_promise, repeat_complaint  |
| manager_escalation | 经理督办   | household | 1200 | customer_service | supervision     | 0.08      | 0.02     | broken_promise, repeat_complaint  |
| project_improvement| 项目整改   | project   | 5000 | customer_service | improvement     | 0.01      | 0.005    | project_drop                      |
| owner_meeting      | 业主恳谈会 | project   | 8000 | customer_service | improvement     | 0.008     | 0.01     | project_drop                      |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.chain import TASK_KINDS
from crm.core.errors import CrmError, NotFound
from crm.core.models import Setting
from crm.core.vocab import SERVICE_KINDS, TEAM_KINDS
from crm.plugins.profitability.vocab import MODEL_LABELS, UNITS

PREFIX = "profitability."
SEVERITIES = {"general": "一般", "important": "重要", "hot": "热点", "major": "重大"}
# The kinds of feedback the satisfaction plugin hands on (Feedback.source "satisfaction.<kind>").
FEEDBACK_KINDS = {
    "satisfaction_drop": "满意度下降",
    "project_drop": "项目满意率下滑",
    "repeat_complaint": "重复投诉",
    "broken_promise": "承诺未兑现",
}
# Purchase-count models; BG/NBD keeps every one-time buyer alive for ever, which for homes
# (most households buy once) credits each with a repurchase they will hardly make.
PURCHASE_MODELS = {
    "mbgnbd": "MBG/NBD（每次购买后都可能流失，含首次购买）",
    "bgnbd": "BG/NBD（只在再次购买后可能流失）",
}
RECORD_HOURS = {
    "complaint": 4.0,
    "repair": 3.0,
    "property_service": 1.0,
    "suggestion": 0.5,
    "visit": 1.0,
    "move_in": 2.0,
    "title_certificate": 1.0,
}
HANDLING_HOURS = {"general": 2.0, "important": 6.0, "hot": 12.0, "major": 40.0}
# code, name, scope, cost, team kind, task, retention gain, referral gain, suits
PLANS = (
    ("phone_revisit", "电话回访", "household", 30, "customer_service", "call", 0.01, 0.005,
     "satisfaction_drop"),
    ("apology_visit", "道歉回访", "household", 200, "customer_service", "apology_visit", 0.04,
     0.01, "broken_promise,satisfaction_drop"),
    ("priority_repair", "优先维修", "household", 800, "technical", "priority_repair", 0.06, 0.01,
     "repeat_complaint"),
    ("loyalty_gift", "忠诚礼品", "household", 500, "customer_service", "gift", 0.03, 0.02,
     "satisfaction_drop"),
    ("compensation", "经济补偿", "household", 3000, "customer_service", "compensation", 0.10,
     0.005, "broken_promise,repeat_complaint"),
    ("manager_escalation", "经理督办", "household", 1200, "customer_service", "supervision", 0.08,
     0.02, "broken_promise,repeat_complaint"),
    ("project_improvement", "项目整改", "project", 5000, "customer_service", "improvement", 0.01,
     0.005, "project_drop"),
    ("owner_meeting", "业主恳谈会", "project", 8000, "customer_service", "improvement", 0.008,
     0.01, "project_drop"),
)  # fmt: skip
SCOPES = {"household": "客户家庭", "project": "项目"}


def _number(low: float, high: float | None = None, integer: bool = False) -> Callable:
    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "整数" if integer else "数字"
            raise CrmError(f"应为{kind}，收到的是“{text}”。") from None
        if value < low or (high is not None and value > high):
            span = f"{low} 到 {high}" if high is not None else f"不小于 {low}"
            raise CrmError(f"取值应在 {span} 之间，收到的是 {text}。")
        return value

    return parse


def _choice(choices: dict[str, str]) -> Callable:
    """A code, given as the code or its label ("customer_service" or "客服")."""
    spellings = {code: code for code in choices} | {label: code for code, label in choices.items()}

    def parse(text: str) -> str:
        code = spellings.get(text.strip())
        if code is None:
            listed = "、".join(f"{label}（{code}）" for code, label in choices.items())
            raise CrmError(f"不认识的取值“{text}”；可用：{listed}。")
        return code

    return parse


def _kinds(text: str) -> tuple[str, ...]:
    """Feedback kinds, comma-separated, each as its code or its label."""
    spellings = {code: code for code in FEEDBACK_KINDS}
    spellings |= {label: code for code, label in FEEDBACK_KINDS.items()}
    given = [k.strip() for k in text.replace("，", ",").replace("、", ",").split(",") if k.strip()]
    unknown = [k for k in given if k not in spellings]
    if unknown:
        listed = "、".join(f"{label}（{code}）" for code, label in FEEDBACK_KINDS.items())
        raise CrmError(f"不认识的反馈类型“{unknown[0]}”；可用：{listed}。")
    return tuple(spellings[k] for k in given)


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "是"):
        return True
    if lowered in ("0", "false", "no", "否"):
        return False
    raise CrmError(f"应为 1/0（是/否），收到的是“{text}”。")


@dataclass(frozen=True)
class Spec:
    default: str
    parse: Callable
    description: str
    # Code -> label when the value is a code (or several, comma-separated): the list shows
    # the labels, `set` takes either and stores the codes.
    labels: dict[str, str] | None = None

    def stored(self, text: str) -> str:
        """The text to store for a checked value: codes for a coded value, else as given."""
        if self.labels is None:
            return text
        value = self.parse(text)
        return ",".join(value) if isinstance(value, tuple) else value


def _specs() -> dict[str, Spec]:
    money, rate, share = _number(0), _number(0, 1), _number(0, 0.99)
    specs = {
        "horizon_years": Spec("5", _number(1, 50, integer=True), "终身价值的预测年限（年）"),
        "discount_rate": Spec("0.08", _number(0, 1), "年折现率"),
        "unit": Spec("months", _choice(UNITS), "购买模型的时间单位（住宅按月）", UNITS),
        "purchase_model": Spec(
            "mbgnbd",
            _choice(MODEL_LABELS),
            "购买模型：" + "；".join(PURCHASE_MODELS.values()),
            MODEL_LABELS,
        ),
        "sales_margin": Spec("0.15", rate, "住宅销售毛利率"),
        "prospect_conversion": Spec("0.15", rate, "准客户一年内成交的概率"),
        "property_fee_per_m2_month": Spec("2.5", money, "物业费（元/平方米/月）"),
        "property_margin": Spec("0.10", rate, "物业费利润率"),
        "referral_cost_rate": Spec("0.01", rate, "老带新成本占推荐成交额的比例（奖励与优惠）"),
        "referral_credit": Spec(
            "1.0", rate, "推荐成交毛利（扣除老带新成本）计入推荐人的比例，只计一次"
        ),
        "hourly_cost": Spec("120", money, "售后服务每工时全成本（元）"),
        "club_cost_per_year": Spec("150", money, "会员俱乐部：每户会员每年运营成本（元）"),
        "min_exposure_years": Spec("2", _number(0.1, 50), "折算年均值时的最短历史（年）"),
        "cost_window_years": Spec(
            "2", _number(0.25, 50), "成本、有偿服务收入与已实现维系利润按最近几年的记录计（年）"
        ),
    }
    for severity, hours in HANDLING_HOURS.items():
        specs[f"handling_hours.{severity}"] = Spec(
            f"{hours:g}", money, f"{SEVERITIES[severity]}工单的处理工时"
        )
    for kind, hours in RECORD_HOURS.items():
        specs[f"record_hours.{kind}"] = Spec(
            f"{hours:g}", money, f"档案服务记录“{SERVICE_KINDS[kind]}”的工时"
        )
    for code, name, _scope, cost, team, task, retention, referral, suits in PLANS:
        specs[f"plans.{code}.cost"] = Spec(f"{cost:g}", money, f"{name}：成本（元）")
        specs[f"plans.{code}.team"] = Spec(
            team, _choice(TEAM_KINDS), f"{name}：承办班组类型", TEAM_KINDS
        )
        specs[f"plans.{code}.task"] = Spec(
            task, _choice(TASK_KINDS), f"{name}：交给员工的任务", TASK_KINDS
        )
        specs[f"plans.{code}.retention_gain"] = Spec(
            f"{retention:g}", share, f"{name}：挽留概率提升（强度 1、对症时）"
        )
        specs[f"plans.{code}.referral_gain"] = Spec(
            f"{referral:g}", share, f"{name}：推荐概率提升（强度 1、对症时）"
        )
        specs[f"plans.{code}.suits"] = Spec(
            suits, _kinds, f"{name}：对症的反馈类型", FEEDBACK_KINDS
        )
        specs[f"plans.{code}.enabled"] = Spec("1", _flag, f"{name}：是否可选")
    return specs


SPECS = _specs()
PLAN_NAMES = {code: name for code, name, *_ in PLANS}


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    scope: str  # household / project: whose feedback the plan answers
    cost: float
    team: str
    task: str
    retention_gain: float
    referral_gain: float
    suits: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    horizon_years: int
    discount_rate: float
    unit: str
    purchase_model: str
    sales_margin: float
    prospect_conversion: float
    property_fee_per_m2_month: float
    property_margin: float
    referral_cost_rate: float
    referral_credit: float
    hourly_cost: float
    club_cost_per_year: float
    min_exposure_years: float
    cost_window_years: float
    handling_hours: dict[str, float]
    record_hours: dict[str, float]
    plans: tuple[PlanSpec, ...]

    @classmethod
    def from_values(cls, values: dict[str, str]) -> Settings:
        """Settings from raw key -> text (keys without the prefix); missing keys default."""
        parsed = {}
        for key, spec in SPECS.items():
            text = values.get(key, spec.default)
            try:
                parsed[key] = spec.parse(text)
            except CrmError as exc:
                raise CrmError(f"设置 {PREFIX}{key} 有误：{exc}") from None
        plans = tuple(
            PlanSpec(
                code,
                name,
                scope,
                parsed[f"plans.{code}.cost"],
                parsed[f"plans.{code}.team"],
                parsed[f"plans.{code}.task"],
                parsed[f"plans.{code}.retention_gain"],
                parsed[f"plans.{code}.referral_gain"],
                parsed[f"plans.{code}.suits"],
            )
            for code, name, scope, *_ in PLANS
            if parsed[f"plans.{code}.enabled"]
        )
        simple = {k: v for k, v in parsed.items() if "." not in k}
        return cls(
            **simple,
            handling_hours={s: parsed[f"handling_hours.{s}"] for s in HANDLING_HOURS},
            record_hours={k: parsed[f"record_hours.{k}"] for k in RECORD_HOURS},
            plans=plans,
        )

    @property
    def annuity(self) -> float:
        """Present value of 1 yuan at the end of each year of the horizon."""
        v = 1.0 / (1.0 + self.discount_rate)
        return sum(v**k for k in range(1, self.horizon_years + 1))


def stored(session: Session) -> dict[str, str]:
    """The keys set in the database (without the prefix)."""
    rows = session.execute(
        select(Setting.key, Setting.value).where(Setting.key.startswith(PREFIX))
    ).all()
    return {key.removeprefix(PREFIX): value for key, value in rows}


def load(session: Session) -> Settings:
    return Settings.from_values(stored(session))


def snapshot(settings: Settings) -> dict:
    """The settings as plain JSON-ready values, kept with each scoring run."""
    from dataclasses import asdict

    return asdict(settings)


def _key(key: str) -> str:
    key = key.strip().removeprefix(PREFIX)
    if key not in SPECS:
        raise NotFound(f"没有设置项“{key}”：用 crm profitability settings list 查看可用的设置项。")
    return key


def list_settings(session: Session) -> list[dict]:
    values = stored(session)
    return [
        {
            "key": PREFIX + key,
            "value": values.get(key, spec.default),
            "value_label": value_label(key, values.get(key, spec.default)),
            "default": spec.default,
            "default_label": value_label(key, spec.default),
            "changed": key in values and values[key] != spec.default,
            "description": spec.description,
        }
        for key, spec in SPECS.items()
    ]


def value_label(key: str, text: str) -> str:
    """A setting's value as people read it: a code by its label, several joined by 、."""
    labels = SPECS[key.removeprefix(PREFIX)].labels
    if labels is None:
        return text
    return "、".join(labels.get(part.strip(), part.strip()) for part in text.split(","))


def set_setting(session: Session, key: str, value: str) -> dict:
    """Change one setting (manager); the value is checked before it is stored."""
    audit.current_user(session).require("profitability.configure", "修改盈利能力评估设置")
    key = _key(key)
    value = value.strip()
    try:
        value = SPECS[key].stored(value)
        SPECS[key].parse(value)
    except CrmError as exc:
        raise CrmError(f"设置 {PREFIX}{key} 的新值有误：{exc}") from None
    values = stored(session)
    if key.startswith("plans.") and key.endswith(".enabled") and not _flag(value):
        scope = next(scope for code, _, scope, *_ in PLANS if key == f"plans.{code}.enabled")
        left = [
            code
            for code, _, other, *_ in PLANS
            if other == scope
            and f"plans.{code}.enabled" != key
            and _flag(values.get(f"plans.{code}.enabled", "1"))
        ]
        if not left:
            raise CrmError(
                f"至少要为{SCOPES[scope]}保留一个可选方案：请先启用其他方案再停用这一个。"
            )
    row = session.get(Setting, PREFIX + key)
    old = row.value if row is not None else SPECS[key].default
    if row is None:
        session.add(Setting(key=PREFIX + key, value=value))
    else:
        row.value = value
    audit.record(session, "update", "settings", PREFIX + key, {"value": [old, value]})
    session.flush()
    return next(r for r in list_settings(session) if r["key"] == PREFIX + key)
