"""The service rules, in one place: ticket types and where requests come from, the steps each
type goes through, severities and the default time limits, the escalation ladder and the
register numbers. The one-ticket path (tickets.py), coordination's tasks (plans.py), the SLA
clocks (sla.py), escalation (escalation.py) and the demo generator (demo.py) all read them here.

Pure data and functions: nothing here touches the database.

The eight steps of a complaint (DOMAIN.md, [000]):
    accepted 受理 → confirmed 确认 → assessed 评估 → investigating 调查 → replied 回复
    → closed 跟踪关闭 → revisited 回访 → completed 信息反馈
A reply the customer does not accept goes back to investigating; a dissatisfied revisit
reopens the ticket (back to investigating, a fresh resolution target, one escalation level up)
unless a manager records why it need not be.

The shorter flows:
    repair      accepted → assessed (warranty check: item, free or paid, dispatch)
                → investigating (the repair work order) → closed (work done, fee signed)
                → revisited (the mandatory phone revisit ends a repair)
    suggestion  accepted → assessed → replied (the answer to the suggester) → closed
                → completed (what the suggestion changed: the feedback step)
    enquiry     accepted → replied (the answer) → closed
Every flow may wait for the customer (waiting_customer 等待客户) from any running step and
returns to the step it left; the SLA clocks stop meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from crm.core import vocab
from crm.core.chain import TASK_KINDS as TASK_LABELS
from crm.core.clock import to_local

TICKET_TYPES = {"complaint": "投诉", "repair": "报修", "suggestion": "建议", "enquiry": "咨询"}
# Register numbers (登记号): prefix, local date, sequence of the day, e.g. TS20260428-0001.
PREFIXES = {"complaint": "TS", "repair": "WX", "suggestion": "JY", "enquiry": "ZX"}
GROUP_PREFIX = "QS"  # 群诉
TASK_PREFIX = "RW"  # 任务: work coordination or a programme gives to staff, not a request
CHANNELS = vocab.SERVICE_CHANNELS  # the same channels as the core service register
# Who a ticket or a work order comes from. Only a customer complains: work the system makes
# for itself (coordination's follow-ups, campaigns, the revisit programme) is never counted as
# a complaint, a contact, a hot spot, a warning or a reason to leave a household out.
ORIGINS = {
    "customer": "客户",
    "staff": "员工发现",
    "coordination": "协调调度",
    "campaign": "营销活动",
    "revisit_programme": "四年之约",
}
CUSTOMER = "customer"

STATUSES = {
    "accepted": "受理",
    "confirmed": "确认",
    "assessed": "评估",
    "investigating": "调查",
    "replied": "回复",
    "closed": "跟踪关闭",
    "revisited": "回访",
    "completed": "信息反馈",
    "waiting_customer": "等待客户",
}
# Statuses in which the clocks run; waiting_customer stops them; closed-or-later ends them.
RUNNING = ("accepted", "confirmed", "assessed", "investigating", "replied")
PAUSED = "waiting_customer"
CLOSED_STATUSES = ("closed", "revisited", "completed")
SEVERITIES = {"general": "一般", "important": "重要", "hot": "热点", "major": "重大"}
SEVERITY_ORDER = tuple(SEVERITIES)  # from the least to the most urgent
CATEGORIES = vocab.COMPLAINT_CATEGORIES
EXPECTATIONS = {
    "taken_seriously": "被重视",
    "respect": "被尊重",
    "fix_now": "马上解决",
    "compensation": "补偿",
    "punish": "惩罚责任人",
    "never_again": "不再发生",
    "be_heard": "被倾听",
}
ACTIONS = {
    "confirm": "确认",
    "assess": "评估",
    "investigate": "调查",
    "reply": "回复",
    "close": "跟踪关闭",
    "revisit": "回访",
    "feedback": "信息反馈",
    "pause": "等待客户",
    "resume": "恢复处理",
    "reopen": "重新处理",
}
# Events that are not steps: what the handling log calls them.
EVENT_LABELS = ACTIONS | {
    "open": "受理登记",
    "contact": "客户再次联系",
    "severity": "调整严重程度",
    "claim": "认领",
    "reassign": "转交",
    "assign": "分派",
    "dispatch": "派工",
    "work_done": "派工完成",
    "work_returned": "退回主管",
    "promise": "承诺",
    "commitment_kept": "承诺兑现",
    "commitment_broken": "承诺未兑现",
    "commitment_settled": "致歉补救",
    "warning": "超时预警",
    "response_breach": "响应超时",
    "resolve_breach": "解决超时",
    "escalate": "升级",
    "group": "并入群诉",
    "warranty_check": "保修判断",
    "fee_stated": "告知收费标准",
    "fee_signed": "业主签字确认收费",
    "override": "经理确认不再处理",
    "options": "提供方案",
    "option_chosen": "客户选定方案",
    "arrive": "到场",
    "forward": "主管转派",
}

COMMITMENT_STATUS = {"open": "待兑现", "kept": "已兑现", "broken": "未兑现"}
# What the periodic check (`crm ticket check`, the scheduler's sla_check) reports, in order.
CHECK_FINDINGS = {
    "response_breach": "首次响应超时",
    "warning": "即将超时预警",
    "resolve_breach": "解决超时",
    "commitment_broken": "承诺未兑现",
    "escalated": "已升级",
    "groups": "群诉",
}
# How a next step reads where staff must type its code: "确认（confirm）".
NEXT_STEPS = {action: f"{label}（{action}）" for action, label in ACTIONS.items()}

# Target marker: leave waiting_customer for the step the ticket was in before.
RESUME = "<resume>"


def _pausable(flow: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Every running step of a flow may wait for the customer, and return from it."""
    table = {
        status: ({**moves, "pause": PAUSED} if status in RUNNING else dict(moves))
        for status, moves in flow.items()
    }
    table[PAUSED] = {"resume": RESUME}
    return table


FLOWS: dict[str, dict[str, dict[str, str]]] = {
    "complaint": _pausable(
        {
            "accepted": {"confirm": "confirmed"},
            "confirmed": {"assess": "assessed"},
            "assessed": {"investigate": "investigating"},
            "investigating": {"reply": "replied"},
            "replied": {"close": "closed", "investigate": "investigating"},
            "closed": {"revisit": "revisited", "reopen": "investigating"},
            "revisited": {"feedback": "completed", "reopen": "investigating"},
            "completed": {},
        }
    ),
    "repair": _pausable(
        {
            "accepted": {"assess": "assessed"},
            "assessed": {"investigate": "investigating"},
            "investigating": {"close": "closed"},
            "closed": {"revisit": "revisited", "reopen": "investigating"},
            "revisited": {"reopen": "investigating"},
        }
    ),
    "suggestion": _pausable(
        {
            "accepted": {"assess": "assessed"},
            "assessed": {"reply": "replied"},
            "replied": {"close": "closed"},
            "closed": {"feedback": "completed"},
            "completed": {},
        }
    ),
    "enquiry": _pausable(
        {
            "accepted": {"reply": "replied"},
            "replied": {"close": "closed"},
            "closed": {},
        }
    ),
}
# The step that ends each flow: no ticket reaches it with remedial or corrective work open.
LAST_STEP = {"complaint": "completed", "repair": "revisited", "suggestion": "completed",
             "enquiry": "closed"}  # fmt: skip
# Actions that carry no data of their own (the rest have their own functions).
SIMPLE_ACTIONS = ("confirm", "investigate", "pause", "resume", "reopen")


def next_status(ticket_type: str, status: str, action: str) -> str | None:
    """Where `action` takes a ticket of this type in this status (RESUME for a resume), or
    None when the flow does not allow it there."""
    return FLOWS[ticket_type].get(status, {}).get(action)


def allowed_actions(ticket_type: str, status: str) -> list[str]:
    return list(FLOWS[ticket_type].get(status, {}))


def raised(old: str, new: str) -> bool:
    """Whether `new` is a more urgent severity than `old`."""
    return SEVERITY_ORDER.index(new) > SEVERITY_ORDER.index(old)


# --- time limits (SLA defaults) -------------------------------------------------------------

# Minutes, first response / resolution (DOMAIN.md: a general request closed within 30
# minutes, a major one within 6 hours; important and hot lie in between, hot being the more
# urgent of the two because many households watch it).
DEFAULT_TARGETS = {"general": (10, 30), "important": (10, 120), "hot": (5, 240), "major": (5, 360)}
# A suggestion needs a considered answer: an hour to acknowledge, two business days (19
# business hours) to answer, whatever the severity.
SUGGESTION_TARGET = (60, 2 * 570)
# Complaints and repairs run around the clock (the monitoring centre answers day and night;
# the flooded flat 1903 called at 8:05); enquiries and suggestions in business hours.
BUSINESS_HOURS_TYPES = ("suggestion", "enquiry")
DEFAULT_WARN_RATIO = 0.8
DEFAULT_HOURS = "08:30-18:00"
DEFAULT_DAYS = "1-7"
# A revisit at or below this CSAT means the customer is not satisfied: the ticket is reopened,
# or a manager records why it need not be (setting service.dissatisfied_csat).
DISSATISFIED_CSAT = 2


def default_policies() -> list[dict]:
    rows = []
    for ticket_type in TICKET_TYPES:
        for severity, (response, resolve) in DEFAULT_TARGETS.items():
            if ticket_type == "suggestion":
                response, resolve = SUGGESTION_TARGET
            rows.append(
                {
                    "ticket_type": ticket_type,
                    "severity": severity,
                    "response_minutes": response,
                    "resolve_minutes": resolve,
                    "business_hours": ticket_type in BUSINESS_HOURS_TYPES,
                    "warn_ratio": DEFAULT_WARN_RATIO,
                }
            )
    return rows


def clock_findings(
    at: dt.datetime,
    response_due: dt.datetime | None,
    resolve_due: dt.datetime | None,
    warn_at: dt.datetime | None,
    first_response: dt.datetime | None,
    resolved: dt.datetime | None,
) -> dict[str, dt.datetime]:
    """What the clocks of a ticket have recorded by `at`: the moment of each finding among
    response_breach, warning and resolve_breach. A response is late when none came by its due
    time; the warning comes at its point unless the ticket was resolved first; the resolution
    is late when the ticket was not resolved by its due time. (sla.check_clocks applies the
    same rule set-based in SQL.)"""
    found = {}
    responded_late = first_response is None or first_response > (response_due or at)
    if response_due is not None and response_due <= at and responded_late:
        found["response_breach"] = response_due
    if resolve_due is not None:
        unresolved_by = resolved if resolved is not None else at
        if warn_at is not None and warn_at <= at and warn_at < unresolved_by:
            found["warning"] = warn_at
        if resolve_due <= at and resolve_due < unresolved_by:
            found["resolve_breach"] = resolve_due
    return found


# --- escalation -------------------------------------------------------------------------------

LEVELS = {1: "一线", 2: "主管", 3: "经理", 4: "总经理"}
FRONT_LINE, SUPERVISOR, MANAGER, TOP = 1, 2, 3, 4
ESCALATION_RULES = {
    "major": "重大直达经理",
    "breach": "超时",
    "reopen": "重新处理",
    "severity": "严重程度上升",
    "group": "群诉",
}
# The four phases of a major group complaint (群诉) [000].
GROUP_PHASES = {
    "latent": "潜伏期",
    "emerging": "萌发期",
    "outbreak": "爆发期",
    "disaster": "灾难期",
}
GROUP_STATUS = {"open": "处理中", "closed": "已结束", "merged": "已合并"}
# What happened to a group complaint, as its events record it.
GROUP_EVENTS = {
    "detect": "发现群诉",
    "create": "登记群诉",
    "link": "并入工单",
    "unlink": "移出工单",
    "merge": "合并",
    "split": "拆分",
    "phase": "调整阶段",
    "lead": "更换第一负责人",
    "member": "应急小组成员",
    "step": "完成处理步骤",
    "close": "结束群诉",
}
ESCALATION_REASONS = {
    "major": "重大投诉直达经理",
    "breach": "超出服务时限",
    "reopen": "客户不满意，工单重新处理",
    "severity": "客户再次来电，严重程度上升",
}


def climb(level: int, causes: Iterable[str], fired: Iterable[tuple[str, int]] = ()) -> list:
    """The escalations due for `causes` (rules, in the order they arose) starting at `level`:
    a major ticket goes straight to the manager (level 3); a breach, a reopening and a raised
    severity each climb one level, up to the general manager (level 4). A rule never fires
    twice for the same level (`fired` holds the (rule, level) pairs on record). Returns the
    (rule, level) pairs to fire."""
    done = set(fired)
    steps = []
    for rule in causes:
        target = MANAGER if rule == "major" else min(level + 1, TOP)
        if (rule, target) in done:
            continue
        done.add((rule, target))
        steps.append((rule, target))
        level = max(level, target)
    return steps


# --- register numbers -------------------------------------------------------------------------


def number_head(prefix: str, moment: dt.datetime) -> str:
    """The day's part of a register number: prefix and local date, e.g. 'TS20260428-'."""
    local = to_local(moment)
    return f"{prefix}{local.year}{local.month:02d}{local.day:02d}-"


def number(head: str, sequence: int) -> str:
    """At least four digits; from the 10,000th of a day on the number simply grows a digit."""
    return f"{head}{sequence:04d}"


# --- dispatch and tasks -----------------------------------------------------------------------

WORK_ORDER_KINDS = {
    "remedial": "补救措施",
    "corrective": "纠正措施",
    "repair": "维修",
    "revisit": "回访",
}
# Tasks coordination gives to staff (no customer request behind them): what each is, and the
# business minutes it is due within.
TASK_MINUTES = {
    "call": 4 * 60,
    "apology_visit": 570,
    "priority_repair": 570,
    "gift": 2 * 570,
    "compensation": 2 * 570,
    "supervision": 570,
    "improvement": 5 * 570,
}
TASK_KINDS = {kind: (TASK_LABELS[kind], minutes) for kind, minutes in TASK_MINUTES.items()}
# Tasks a manager carries (督办, 项目整改): they go to a level-3 person, not the front line.
MANAGER_TASKS = ("supervision", "improvement")
# Every kind of work order and task, as the lists show them.
WORK_KINDS = WORK_ORDER_KINDS | TASK_LABELS
WORK_ORDER_STATUS = {
    "open": "处理中",
    "done": "已完成",
    "returned": "已退回主管",
    "cancelled": "已取消",
}
# What else a team may look after, besides complaint categories and warranty items (a team's
# `handles`: the work it takes when dispatch goes by category).
SERVICE_AREAS = {
    "security": "安全",
    "access_control": "门禁",
    "parking": "停车",
    "fire": "消防",
    "cleaning": "清洁",
    "sanitation": "环境卫生",
    "garbage": "垃圾清运",
    "landscaping": "绿化",
    "pest_control": "除虫灭鼠",
}
# Work that must be finished before a ticket takes its last step.
BLOCKS_LAST_STEP = ("remedial", "corrective", "repair")


# Lines of the 一路同行 loyalty fund ledger (crm.plugins.service.fund): kept here, beside the
# other vocabularies, so the commands' help can name them without loading the database layer.
FUND_KINDS = {
    "allocation": "年度利润拨付",
    "contribution": "客户出资",
    "activity": "业主活动",
    "gift": "礼品",
    "care": "其他关怀",
}
