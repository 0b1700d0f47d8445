"""After-sales sample data for `crm demo`: staff for the teams, and two years of tickets with
their steps, SLA clocks, escalations, commitments, work orders and one group complaint (群诉).

Called through the build_demo_data hook after the core has built households, units and
purchases. Rows are drawn from `random.Random(seed)` with every state computed directly (the
state machine is not run per ticket), given ids here and written with Core executemany, so a
100,000-household demo stays fast; one `demo_data` audit entry records the counts.

Rates (per household, over the last SPAN_DAYS days; the targets are the SLA policies in the
database, DOMAIN.md: a general request closed within 30 minutes, a major one within 6 hours):

| what                                              | rate                                   |
|---------------------------------------------------|----------------------------------------|
| tickets                                           | 0.6 per household: repair 40 %,        |
|                                                   | complaint 25 %, enquiry 25 %,          |
|                                                   | suggestion 10 %                        |
| a second complaint within 2-25 days (重复投诉)    | 8 % of complaints                      |
| first response late / resolution late (breach)    | 4 % / 12 %                             |
| waits for the customer on the way                 | 6 % of complaints and repairs          |
| revisited after closing (repairs: within 24 h)    | repairs 97 %, complaints 92 %          |
| revisit dissatisfied and reopened                 | 4 % of revisits                        |
| complaint reply with a commitment (all major/hot) | 55 %; 7 % of commitments broken        |
| repair returned to the supervisor (beyond skill)  | 2 %                                    |
| still open at `now`: a few at risk, overdue and   | about 0.3 %, 0.4 % and 0.2 % of the    |
| waiting for the customer                          | tickets                                |
| complaint wording: an opening (who reports) and   | 75 % name a consequence of the         |
| the consequence that tells the severity           | ticket's severity (see CONSEQUENCES)   |
| what a done repair cost the company (work order)  | in warranty (the developer's charge):  |
|                                                   | median 600 yuan, a few up to 30,000;   |
|                                                   | past warranty (the owner pays the fee):|
|                                                   | median 150 yuan not covered            |
| compensation on a complaint's remedial action     | general 5 % / important 15 % / hot     |
|                                                   | 30 % / major 50 %, median 500 / 2,000 /|
|                                                   | 5,000 / 15,000 yuan                    |
| 一路同行 loyalty fund, per project and fund year    | 2 owner activities (150 yuan a place,  |
|                                                   | 8 % of owners, 85 % turn up), gifts to |
|                                                   | 3 % of owners (200-800 yuan), one care |
|                                                   | spend of 5,000-20,000 yuan for the     |
|                                                   | project, contributions from 1 % of     |
|                                                   | owners (500-2,000), and an allocation  |
|                                                   | from profit that covers the year       |

Costs come from a random stream of their own, so adding them left every other draw as it was.

Revisit answers (CSAT, would-recommend, expectation/experience per aspect) are handed to
satisfaction monitoring in one `tickets_revisited` call once the tickets are written.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.bulk import write_rows
from crm.core.chain import Revisit, TicketFacts
from crm.core.clock import add_months, local_zone, to_local
from crm.core.models import (
    Building,
    Household,
    Project,
    Purchase,
    ServiceRecord,
    Setting,
    Unit,
)
from crm.core.vocab import COMPLAINT_CAUSES
from crm.plugins.service import groups, register, rules, sla
from crm.plugins.service.models import (
    ActivitySignup,
    Commitment,
    Escalation,
    GroupComplaint,
    LoyaltyFundEntry,
    ProjectManager,
    RewardActivity,
    Staff,
    Team,
    Ticket,
    TicketCause,
    TicketEvent,
    WorkOrder,
)
from crm.plugins.service.repairs import WARRANTY_ITEMS, warranty_months
from crm.plugins.service.tickets import CATEGORIES, CHANNELS, EXPECTATIONS

STAFF_SETTING = "demo.service.staff"  # ids of the staff the demo added, removed on a rebuild
BATCH = 5000
SPAN_DAYS = 730
PER_HOUSEHOLD = 0.6
TYPES = {"repair": 40, "complaint": 25, "enquiry": 25, "suggestion": 10}
REPEAT = 0.08
RESPONSE_LATE, RESOLVE_LATE = 0.04, 0.12
WAITS = 0.06
REVISITED = {"repair": 0.97, "complaint": 0.92}
# Of the revisits a customer is unhappy with, the share a manager closes with a recorded
# reason instead of reopening (the request is outside what the company owes).
OVERRIDDEN = 0.25
PROMISE, BROKEN = 0.55, 0.07
RETURNED = 0.02
AT_RISK, OVERDUE, WAITING = 0.003, 0.004, 0.002
TITLES = {
    "customer_service": "客服大使",
    "technical": "技术员",
    "security": "安全员",
    "cleaning": "保洁员",
    "vendor": "外包保洁员",
}
SKILLS = {"technical": ("水电", "木工", "防水", "门窗", "对讲", "空调", "管道疏通")}

SEVERITY = {
    "complaint": ((("general", 60), ("important", 22), ("hot", 10), ("major", 8))),
    "repair": ((("general", 72), ("important", 24), ("major", 4))),
    "suggestion": ((("general", 1),)),
    "enquiry": ((("general", 1),)),
}
CHANNEL = {
    "complaint": (("phone", 50), ("visit", 25), ("online", 17), ("letter", 6), ("fax", 2)),
    "repair": (("phone", 70), ("visit", 18), ("online", 12)),
    "suggestion": (("online", 40), ("letter", 30), ("visit", 30)),
    "enquiry": (("phone", 60), ("online", 25), ("visit", 15)),
}
# (category, summary, what the customer expects); {unit} is the flat.
COMPLAINTS = (
    (
        "engineering",
        "{unit} 室阳台地漏堵塞，雨水倒灌进屋；业主两次来电，安全员判断不严重未上报",
        ("fix_now", "taken_seriously", "never_again"),
    ),
    ("engineering", "{unit} 室卫生间漏水，楼下住户天花板受潮", ("fix_now", "compensation")),
    ("engineering", "外墙渗水，{unit} 室卧室墙面发霉", ("fix_now", "never_again")),
    ("engineering", "电梯频繁故障停运，老人出行不便", ("fix_now", "never_again")),
    ("engineering", "地下车库积水，车辆受损", ("compensation", "never_again")),
    ("engineering", "{unit} 室入户门变形，关闭不严", ("fix_now",)),
    ("design", "{unit} 室客厅采光被新建楼栋遮挡，与销售时的说法不符", ("be_heard", "compensation")),
    ("design", "{unit} 室厨房排烟道设计不合理，油烟倒灌", ("fix_now", "never_again")),
    ("design", "小区车位配比不足，晚上回家无处停车", ("be_heard", "taken_seriously")),
    ("sales_management", "交房面积与合同面积误差超过约定，要求说明并退还差价", ("compensation",)),
    ("sales_management", "销售人员承诺的赠送露台未兑现", ("compensation", "punish")),
    ("sales_management", "办证进度缓慢，逾期未拿到不动产权证书", ("taken_seriously", "fix_now")),
    (
        "service",
        "对讲机维修后次日再次故障，业主对收取维修费不满",
        ("respect", "compensation", "never_again"),
    ),
    ("service", "维修人员语气生硬，质疑业主投诉证据，业主要求道歉", ("respect", "punish")),
    ("service", "维修人员只留下装修公司电话，未帮忙拆装家具", ("taken_seriously", "be_heard")),
    ("service", "邻居装修超时施工，噪音影响休息", ("fix_now", "be_heard")),
    ("service", "公共走道被邻居鞋柜长期占用，多次反映未解决", ("taken_seriously", "fix_now")),
    ("service", "小区绿地被个别住户种菜养鸭，气味扰民", ("fix_now",)),
    ("service", "垃圾房散发恶臭，保洁清运不及时", ("fix_now", "never_again")),
    ("service", "物业费上涨未公示收费明细", ("be_heard", "respect")),
)
# How owners put it: who reports and what it did to them vary the wording of one complaint, and
# what it did is what staff read its severity from at assessment (重大 when someone is hurt or
# property is damaged, 热点 when it spreads among owners or to the media). A quarter of the
# complaints say nothing of the consequence, so the text alone cannot always tell.
OPENINGS = ("", "业主来电反映：", "业主投诉：", "业主在线留言：", "住户反映：", "业主到访称：")
CONSEQUENCES = {
    "general": ("", "，希望尽快处理", "，请安排人来看看", "，麻烦跟进一下"),
    "important": (
        "，已影响正常生活",
        "，多次反映仍未解决",
        "，家里暂时没法住人",
        "，拖了一周没人管",
    ),
    "hot": (
        "，业主已在业主群发视频，多位邻居跟帖",
        "，业主称要找媒体曝光",
        "，已有十几户业主联名",
        "，业主在网上发帖投诉，转发很多",
    ),
    "major": (
        "，家中老人因此摔伤",
        "，造成家具家电损坏，要求赔偿",
        "，存在安全隐患，孩子差点受伤",
        "，业主要求退房并赔偿损失",
    ),
}
SAYS_CONSEQUENCE = 0.75
# The planted group complaint: one building's garage floods, and each owner says it their way.
GARAGE = (
    "地下车库积水，车辆受损",
    "地下车库积水严重，车辆被泡",
    "一下雨地下车库就积水，车辆受损",
    "地下车库排水不畅，积水淹到车轮",
    "地下车库积水多日，车停不进去",
    "地下车库积水，电梯厅也进了水",
)


REPAIRS = (
    ("intercom", "{unit} 室对讲机按钮接触不良，无法开门"),
    ("drain_blockage", "{unit} 室阳台地漏堵塞，雨天积水"),
    ("drain_blockage", "{unit} 室马桶堵塞外溢"),
    ("heating_cooling", "{unit} 室暖气管接头漏水"),
    ("fittings", "{unit} 室入户门锁损坏，钥匙拧不动"),
    ("waterproofing", "{unit} 室外墙渗水，卧室墙角发霉"),
    ("plumbing", "{unit} 室厨房水龙头下方水管漏水"),
    ("electrical", "{unit} 室电路频繁跳闸"),
    ("flooring", "{unit} 室客厅地面空鼓"),
    ("sanitary_ware", "{unit} 室洗手盆开裂"),
    ("lamps_switches", "{unit} 室开关面板烧坏"),
    ("plaster", "{unit} 室天花板抹灰层脱落"),
    ("home_service", "{unit} 室请求帮忙拆装衣柜（需木工）"),
)
SUGGESTIONS = (
    ("service", "建议暴雨台风前检查排水口，并提醒装修中、空置的住户"),
    ("design", "建议增设儿童游乐设施和休息座椅"),
    ("service", "建议延长会所开放时间"),
    ("design", "建议在地下车库增加充电桩"),
    ("service", "建议维修前先说明是否收费及收费标准"),
    ("service", "建议增加亲子读书会等业主活动场次"),
)
ENQUIRIES = (
    ("service", "咨询物业费缴费方式与发票开具"),
    ("sales_management", "咨询不动产权证书办理进度"),
    ("service", "咨询装修申请流程与装修押金"),
    ("service", "咨询车位续租与停车卡办理"),
    ("sales_management", "咨询老带新推荐奖励规则"),
)
PROSPECT_ENQUIRIES = (
    ("sales_management", "咨询新一期开盘时间与价格"),
    ("sales_management", "咨询样板间开放时间与购房优惠"),
    ("sales_management", "咨询首付比例与公积金贷款办理"),
)
ROOT_CAUSES = {
    "engineering": (
        ("施工时排水坡度不足，雨季积水", "对同类户型排查整改，并纳入工程验收标准"),
        (
            "安全员对漏水的严重性判断不足，派单后无人跟踪",
            "雨季前培训风险判断；所有派单由信息中心跟踪到关闭",
        ),
    ),
    "design": (("设计阶段未充分考虑业主使用习惯", "意见转设计部，纳入后续项目设计评审"),),
    "sales_management": (("销售说辞与合同约定不一致", "统一销售说辞，交房前逐户核对承诺事项"),),
    "service": (
        ("维修前未说明收费标准", "上门必须携带《居家服务情况记录表》，开工前告知收费并由业主签字"),
        (
            "超出能力的工作未反馈主管，信息流失",
            "超出能力的工作一律退回主管另行安排；开展服务案例交流会",
        ),
        ("外包方清运频次不足", "与外包方约定每日两次清运并纳入月度考核"),
    ),
}
PROMISES = (
    "安排技术员上门处理，并回电告知结果",
    "上门疏通地漏并确认效果",
    "完成修补，完工后电话回访",
    "书面答复收费明细",
    "与相关业主协调并反馈结果",
)
SETTLEMENT = (
    "当面向业主致歉",
    "配件缺货，供应商延迟送货",
    "改用替代配件当天修复，并减免本次人工费",
)
ASPECTS = {
    "complaint": ("响应速度", "处理结果", "服务态度"),
    "repair": ("响应速度", "维修质量", "服务态度", "收费透明"),
}
FEE_RATES = (
    "材料费 30 元/个，人工费 20 元/次",
    "人工费 50 元/小时，材料按实结算",
    "上门费 20 元，材料费按价目表收取",
)
OVERRIDE_REASONS = (
    "客户要求超出合同约定的交付标准，已当面解释并书面答复",
    "客户要求更换整套设备，经鉴定不属质量问题，已说明",
    "客户对相邻业主的私人纠纷不满，已转社区调解",
)
GOOD_COMMENTS = ("处理及时，态度很好", "问题已解决，满意", "师傅很专业，谢谢")
BAD_COMMENTS = (
    "问题反复出现，希望彻底解决",
    "等了太久，没有人主动告知进度",
    "态度一般，解释不清楚",
)


# The steps between the first response and closing, at these shares of that time.
STEPS = {
    "complaint": (("confirm", 0.0), ("assess", 0.15), ("investigate", 0.3), ("reply", 0.65)),
    "repair": (("assess", 0.0), ("investigate", 0.2)),
    "suggestion": (("assess", 0.0), ("reply", 0.6)),
    "enquiry": (("reply", 0.0),),
}
NOTES = {
    "confirm": "与业主核实情况",
    "investigate": "现场查看，查找原因",
    "reply": "向业主说明处理方案与时间",
    "close": "业主确认问题已解决",
    "pause": "业主出差，约定回来后上门处理",
    "resume": "业主已回，恢复处理",
}
# CSAT of a revisit: (5, 4, 3, 2, 1) weights, on time or after a breach.
CSAT_ON_TIME = ((5, 45), (4, 38), (3, 11), (2, 4), (1, 2))
CSAT_LATE = ((5, 20), (4, 35), (3, 25), (2, 12), (1, 8))
# Would-recommend (0-10) range and experience − expectation range, per CSAT.
NPS_BY_CSAT = {5: (8, 10), 4: (6, 10), 3: (4, 8), 2: (1, 6), 1: (0, 4)}
GAP_BY_CSAT = {5: (0, 2), 4: (-1, 1), 3: (-2, 0), 2: (-4, -2), 1: (-6, -3)}
WRITTEN = (
    "svc_staff",
    "svc_group_complaints",
    "svc_tickets",
    "svc_ticket_events",
    "svc_commitments",
    "svc_escalations",
    "svc_work_orders",
    "svc_ticket_causes",
    "svc_reward_activities",
    "svc_activity_signups",
    "svc_loyalty_fund_entries",
)
# Costs (see the table above): repair cost (median yuan, spread of its log) by whether the
# developer pays; compensation (chance, median) by complaint severity.
REPAIR_COST = {True: (600.0, 1.0), False: (150.0, 0.6), None: (300.0, 0.8)}
REPAIR_COST_CAP = 30_000.0
COMPENSATION = {
    "general": (0.05, 500.0),
    "important": (0.15, 2_000.0),
    "hot": (0.30, 5_000.0),
    "major": (0.50, 15_000.0),
}
ACTIVITIES = ("业主答谢会", "亲子嘉年华", "社区运动会", "中秋游园会", "业主健康讲座")
ACTIVITY_PLACE_COST, ACTIVITY_SHARE, TURN_UP = 150, 0.08, 0.85
GIFT_SHARE, CONTRIBUTION_SHARE = 0.03, 0.01
# Why the customer complained, by category (drawn at the feedback step; see _causes).
CAUSES_BY_CATEGORY = {
    "engineering": ("product_service", "expectation_unmet", "old_grievance", "work_error"),
    "design": ("high_expectation", "high_price", "informed_customer", "expectation_unmet"),
    "sales_management": ("mixed_messages", "high_expectation", "broken_promise", "high_price"),
    "service": ("rude_staff", "unprofessional", "work_error", "not_heeded", "mixed_messages"),
}


class _Weighted:
    """A weighted choice by bisection (random.choices rebuilds its table on every call)."""

    def __init__(self, pairs):
        pairs = list(pairs)
        self.values = [value for value, _ in pairs]
        self.cum = list(itertools.accumulate(weight for _, weight in pairs))

    def __call__(self, rng: random.Random):
        return self.values[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


def answers(rng: random.Random, csat: int, aspects: tuple[str, ...]) -> tuple[int, dict]:
    """Would-recommend and (expectation, experience) per aspect that go with a CSAT."""

    def between(low: int, high: int) -> int:  # randint without its argument checks
        return low + int(rng.random() * (high - low + 1))

    gap_low, gap_high = GAP_BY_CSAT[csat]
    pairs = {}
    for aspect in aspects:
        expectation = between(6, 10)
        experience = min(10, max(1, expectation + between(gap_low, gap_high)))
        pairs[aspect] = (expectation, experience)
    return between(*NPS_BY_CSAT[csat]), pairs


@dataclass
class _Person:
    id: int
    name: str
    team_id: int
    level: int


@dataclass
class _Home:
    household_id: int
    name: str
    project_id: int | None
    unit_id: int | None = None
    unit: str | None = None
    building_id: int | None = None
    handover: dt.date | None = None


@dataclass
class _Draft:
    """A ticket before its number: who, when, and what happens to it."""

    kind: str
    home: _Home
    opened: dt.datetime
    outcome: str = "normal"  # normal / at_risk / overdue / waiting / group
    severity: str | None = None
    topic: tuple | None = None


class _Log:
    """The events of one ticket, numbered in time order once the ticket is done."""

    def __init__(self, ticket_id: int):
        self.ticket_id = ticket_id
        self.events: list[dict] = []

    def __call__(self, at, actor, action, note, before=None, after=None) -> None:
        self.events.append(
            {
                "ticket_id": self.ticket_id,
                "at": at,
                "entered_at": at,  # the demo's staff type things in as they happen
                "actor": actor,
                "action": action,
                "from_status": before,
                "to_status": after,
                "note": note,
            }
        )

    def close(self, rows: list[dict], next_id: Callable[[], int]) -> dt.datetime:
        """Append the events in time order; returns the time of the last."""
        self.events.sort(key=lambda event: event["at"])
        for event in self.events:
            event["id"] = next_id()
        rows.extend(self.events)
        return self.events[-1]["at"]


@dataclass
class _Ticket:
    """What the later steps (revisits, commitments, work orders) need of a ticket."""

    id: int
    number: str
    kind: str
    home: _Home
    team: Team
    owner: _Person
    severity: str
    category: str
    summary: str
    log: _Log
    # Escalation causes (rule, when) in any order; the group link (when, reason), if any.
    escalations: list = field(default_factory=list)
    group_at: tuple | None = None
    revisit_notes: list = field(default_factory=list)
    arrived: dt.datetime | None = None
    in_warranty: bool | None = None  # a repair's verdict: the developer pays when True


class _Builder:
    def __init__(self, session: Session, seed: int, now: dt.datetime):
        self.session = session
        self.seed = seed
        self.rng = random.Random(seed * 7919 + 3)  # a stream of its own, apart from the core's
        self.costs = random.Random(seed * 7919 + 11)  # costs: drawn apart from everything else
        self.now = now
        self.actor = audit.current_user(session).name
        self.calendar = sla.load_calendar(session)
        self.zone = local_zone()  # read once: local_zone() reads the environment each call
        self.policies = {
            (p.ticket_type, p.severity): p for p in session.scalars(select(sla.SlaPolicy)).all()
        }
        self.warranty = {code: warranty_months(session, code) for code in WARRANTY_ITEMS}
        self.tables: dict[str, Table] = {
            m.__table__.name: m.__table__
            for m in (
                Staff, GroupComplaint, Ticket, TicketEvent, Commitment, Escalation, WorkOrder,
                TicketCause, RewardActivity, ActivitySignup, LoyaltyFundEntry,
            )
        }  # fmt: skip
        # Ids continue after what the tables hold (nothing, unless staff were added by hand).
        self.ids: Counter[str] = Counter(
            {
                name: session.scalar(select(func.max(table.c.id))) or 0
                for name, table in self.tables.items()
            }
        )
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.stats: Counter[str] = Counter()
        self.revisits: list[Revisit] = []
        self.causes: dict[str, list[str]] = {}
        self.staff: dict[tuple[int, int], list[_Person]] = defaultdict(list)
        self.turn: Counter[int] = Counter()
        self.samples: dict[str, str] = {}
        self.severity = {kind: _Weighted(pairs) for kind, pairs in SEVERITY.items()}
        self.channel = {kind: _Weighted(pairs) for kind, pairs in CHANNEL.items()}
        self.csat = {False: _Weighted(CSAT_ON_TIME), True: _Weighted(CSAT_LATE)}
        self.group: dict | None = None
        self.owners: list[_Home] = []

    def _int(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low + 1))

    def _one(self, items):
        return items[int(self.rng.random() * len(items))]

    def _next(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def _hm(self, moment: dt.datetime) -> str:
        local = moment.astimezone(self.zone)
        return f"{local.year}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"

    def _after(self, start: dt.datetime, minutes: float, business: bool) -> dt.datetime:
        return sla.add_minutes(start, minutes, self.calendar if business else None)

    # staff ---------------------------------------------------------------------------------

    def build_staff(self, households: int) -> None:
        """Front line per team in proportion to the portfolio, a supervisor per team, a
        manager and a general manager at the customer service centre."""
        from faker import Faker

        session = self.session
        stored = session.get(Setting, STAFF_SETTING)
        if stored is not None:  # a rebuild: every row naming them went with the households
            session.execute(delete(Staff.__table__).where(Staff.id.in_(json.loads(stored.value))))
            # Number them again after the staff that remain, so a rebuild with the same seed
            # and time gives the same rows.
            self.ids["svc_staff"] = session.scalar(select(func.max(Staff.id))) or 0
        taken = set(session.scalars(select(Staff.name)).all())
        self.teams = session.scalars(
            select(Team).where(Team.active.is_(True)).order_by(Team.kind == "vendor", Team.id)
        ).all()
        self.centre = next((t for t in self.teams if t.kind == "customer_service"), self.teams[0])
        fake = Faker("zh_CN")
        fake.seed_instance(self.seed)
        front = max(3, min(25, round(households / 4000)))
        rows = []

        def add(team: Team, level: int, title: str, skills: list[str]) -> None:
            name = fake.name()
            while name in taken:
                name = fake.name()
            taken.add(name)
            person = _Person(self._next("svc_staff"), name, team.id, level)
            self.staff[(team.id, level)].append(person)
            rows.append(
                {
                    "id": person.id,
                    "name": name,
                    "team_id": team.id,
                    "title": title,
                    "level": level,
                    "skills": skills,
                    "active": True,
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )

        for team in self.teams:
            pool = SKILLS.get(team.kind, ())
            for _ in range(front if team.kind != "vendor" else max(2, front // 2)):
                skills = self.rng.sample(pool, self._int(1, 3)) if pool else []
                add(team, 1, TITLES.get(team.kind, "专员"), skills)
            add(team, 2, f"{team.name}主管", [])
        add(self.centre, 3, "客户服务经理", [])
        add(self.centre, 4, "总经理", [])
        # Each project's responsible manager (项目负责人): its improvement tasks go to them.
        projects = session.scalars(select(Project.id).order_by(Project.id)).all()
        for project_id in projects:
            add(self.centre, 3, "项目经理", [])
            self.rows["svc_project_managers"].append(
                {
                    "project_id": project_id,
                    "staff_id": rows[-1]["id"],
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )
        self.rows["svc_staff"] = rows
        stored = stored or Setting(key=STAFF_SETTING)
        stored.value = json.dumps([row["id"] for row in rows])
        session.add(stored)

    def _front(self, team_id: int) -> _Person:
        """The team's front line in turn, which keeps their open load balanced."""
        people = self.staff[(team_id, 1)] or self.staff[(self.centre.id, 1)]
        self.turn[team_id] += 1
        return people[self.turn[team_id] % len(people)]

    def _level(self, level: int, team_id: int) -> _Person | None:
        """As escalation.pick_staff: that level in the ticket's team, else the centre's."""
        people = self.staff.get((team_id, level)) or self.staff.get((self.centre.id, level))
        return people[0] if people else None

    def _team_for(self, repair_item: str | None, category: str | None) -> Team:
        """As dispatch.team_for: the team handling the repair item, else the category."""
        for key in (repair_item, category):
            for team in self.teams:
                if key and key in (team.handles or []):
                    return team
        return self.centre

    # who complains, and when ---------------------------------------------------------------

    def _homes(self) -> tuple[list[_Home], list[_Home]]:
        session = self.session
        names = dict(session.execute(select(Household.id, Household.name)).all())
        owners = [
            _Home(hid, names[hid], project, unit_id, code, building, handover)
            for hid, unit_id, code, building, project, handover in session.execute(
                select(
                    Purchase.household_id,
                    Purchase.unit_id,
                    Unit.code,
                    Unit.building_id,
                    Building.project_id,
                    Purchase.handover_date,
                )
                .join(Unit, Purchase.unit_id == Unit.id)
                .join(Building, Unit.building_id == Building.id)
                .where(Purchase.handover_date.is_not(None))
                .order_by(Purchase.id)
            )
        ]
        prospects = [
            _Home(hid, names[hid], project)
            for hid, project in session.execute(
                select(Household.id, Household.project_id)
                .where(Household.status == "prospective")
                .order_by(Household.id)
            )
        ]
        return owners, prospects

    def drafts(self, households: int) -> list[_Draft]:
        rng = self.rng
        owners, prospects = self._homes()
        self.owners = owners  # the loyalty fund's owners too
        if not owners:
            return []
        kinds = _Weighted(TYPES.items())
        today = to_local(self.now).date()
        start = today - dt.timedelta(days=SPAN_DAYS)
        hours = _Weighted(
            zip(range(7, 23), (2, 8, 10, 10, 9, 6, 7, 9, 9, 8, 7, 6, 5, 3, 2, 1), strict=True)
        )

        def when(first: dt.date) -> dt.datetime | None:
            first = max(first, start)
            if first > today:
                return None
            day = first + dt.timedelta(days=self._int(0, (today - first).days))
            local = dt.datetime(day.year, day.month, day.day, hours(rng), self._int(0, 59))
            moment = local.replace(tzinfo=local_zone()).astimezone(dt.UTC)
            return moment if moment < self.now else None

        drafts: list[_Draft] = []
        for _ in range(round(households * PER_HOUSEHOLD)):
            kind = kinds(rng)
            if kind == "enquiry" and prospects and rng.random() < 0.35:
                home = self._one(prospects)
                opened = when(start)
            else:
                home = self._one(owners)
                opened = when(home.handover)
            if opened is None:
                continue
            drafts.append(_Draft(kind, home, opened))
            if kind == "complaint" and rng.random() < REPEAT:  # called again about it
                again = opened + dt.timedelta(days=self._int(2, 25), minutes=self._int(-300, 300))
                if again < self.now:
                    drafts.append(_Draft(kind, home, again))
        total = len(drafts)
        for outcome, share, minutes in (
            ("at_risk", AT_RISK, (25, 29)),  # a general ticket's 30 minutes, warned at 24
            ("overdue", OVERDUE, (90, 10 * 1440)),
            ("waiting", WAITING, (120, 3 * 1440)),
        ):
            for _ in range(max(2, round(total * share))):
                kind = "complaint" if rng.random() < 0.6 else "repair"
                opened = self.now - dt.timedelta(
                    minutes=self._int(*minutes), seconds=self._int(0, 59)
                )
                severity = "general" if outcome == "at_risk" else None
                drafts.append(_Draft(kind, self._one(owners), opened, outcome, severity))
        drafts.extend(self._group_drafts(owners))
        drafts.sort(key=lambda d: d.opened)
        return drafts

    def _group_drafts(self, owners: list[_Home]) -> list[_Draft]:
        """Households of one building complaining, each in their own words, of their
        building's flooded garage this week: a shared problem, the group complaint (群诉)."""
        by_building: dict[int, dict[int, _Home]] = defaultdict(dict)
        for home in owners:
            by_building[home.building_id].setdefault(home.household_id, home)
        ranked = sorted(by_building, key=lambda b: (-len(by_building[b]), b))
        if not ranked or len(by_building[ranked[0]]) < 3:
            return []
        homes = by_building[ranked[0]]
        chosen = self.rng.sample(sorted(homes), min(len(homes), self._int(4, 6)))
        wanted = ("compensation", "never_again")
        first = self.now - dt.timedelta(days=4, minutes=self._int(0, 600))
        return [
            _Draft(
                "complaint",
                homes[hid],
                first + dt.timedelta(minutes=self._int(0, 3 * 1440)),
                "group",
                "hot",
                ("engineering", GARAGE[i % len(GARAGE)], wanted),
            )
            for i, hid in enumerate(chosen)
        ]

    # one ticket ----------------------------------------------------------------------------

    def _topic(self, draft: _Draft) -> tuple[str, str, list[str], str | None]:
        """Category, summary, expectations and repair item."""
        home = draft.home
        if draft.kind == "complaint":
            category, summary, wanted = draft.topic or self._one(COMPLAINTS)
            return category, summary.format(unit=home.unit), list(wanted), None
        if draft.kind == "repair":
            item, summary = self._one(REPAIRS)
            category = "service" if item == "home_service" else "engineering"
            return category, summary.format(unit=home.unit), [], item
        pool = SUGGESTIONS if draft.kind == "suggestion" else ENQUIRIES
        if draft.kind == "enquiry" and home.unit is None:
            pool = PROSPECT_ENQUIRIES
        category, summary = self._one(pool)
        return category, summary, [], None

    def _wording(self, summary: str, severity: str, tid: int) -> str:
        """A complaint as one owner put it (see OPENINGS). Drawn from a stream of its own per
        ticket, so the rest of the demo stays as it was for a given seed."""
        words = random.Random(self.seed * 104_729 + tid)
        opening = words.choice(OPENINGS)
        said = words.random() < SAYS_CONSEQUENCE
        return opening + summary + (words.choice(CONSEQUENCES[severity]) if said else "")

    def ticket(self, draft: _Draft, number: str) -> dict:
        rng, now = self.rng, self.now
        kind, home = draft.kind, draft.home
        tid = self._next("svc_tickets")
        severity = draft.severity or self.severity[kind](rng)
        category, summary, expectations, repair_item = self._topic(draft)
        if kind == "complaint":
            summary = self._wording(summary, severity, tid)
        policy = self.policies[(kind, severity)]
        calendar = self.calendar if policy.business_hours else None
        team = self._team_for(repair_item, category)
        owner = self._front(team.id)
        reporter = self._front(self.centre.id).name
        channel = self.channel[kind](rng)
        log = _Log(tid)
        ticket = _Ticket(tid, number, kind, home, team, owner, severity, category, summary, log)

        # How long the first response and the resolution take against the targets.
        late = rng.random() < RESOLVE_LATE or draft.outcome in ("overdue", "group")
        response = policy.response_minutes * (
            rng.uniform(1.3, 5) if rng.random() < RESPONSE_LATE else rng.uniform(0.15, 0.9)
        )
        resolve = policy.resolve_minutes * (
            rng.uniform(1.2, 8) if late else rng.uniform(0.35, 0.95)
        )
        opened = draft.opened
        waited = (now - opened).total_seconds() / 60
        if draft.outcome == "at_risk":  # opened past the warning point of its target
            response = policy.response_minutes * rng.uniform(0.2, 0.9)
            resolve = max(policy.resolve_minutes, waited) * rng.uniform(1.02, 1.1)
        elif draft.outcome == "overdue":  # replied, mostly, but not closed
            resolve = max(resolve, waited * rng.uniform(1.05, 1.6))
        elif draft.outcome in ("group", "waiting"):
            resolve = max(resolve, waited * rng.uniform(1.3, 3))
        resolve = max(resolve, response + 1)
        first_response = sla.add_minutes(opened, response, calendar)
        closing = sla.add_minutes(opened, resolve, calendar)
        span = closing - first_response
        steps = [(action, first_response + span * share) for action, share in STEPS[kind]]
        steps.append(("close", closing))

        # Waiting for the customer after the first step: the clocks stop meanwhile.
        paused_minutes, paused_at = 0.0, None
        if draft.outcome == "waiting":
            at = max(
                first_response,
                min(
                    steps[min(1, len(steps) - 2)][1], now - dt.timedelta(minutes=self._int(30, 600))
                ),
            )
            steps = [s for s in steps if s[1] <= at and s[0] != "close"] + [("pause", at)]
            paused_at = at
        elif kind in REVISITED and draft.outcome == "normal" and rng.random() < WAITS:
            at = steps[1][1]
            wall = dt.timedelta(minutes=self._int(240, 3 * 1440))
            steps = (
                steps[:1]
                + [("pause", at), ("resume", at + wall)]
                + [(action, moment + wall) for action, moment in steps[1:]]
            )
            paused_minutes = sla.minutes_between(at, at + wall, calendar)
        clock = sla.due_times(policy, opened, paused_minutes, calendar)
        response_due, resolve_due, warn_at = (
            clock["response_due_at"], clock["resolve_due_at"], clock["resolve_warn_at"],
        )  # fmt: skip

        log(opened, reporter, "open", f"{CHANNELS[channel]}受理：{summary}", None, "accepted")
        status, before_pause, assessed_at, reply_at, closed_at = (
            "accepted",
            "accepted",
            None,
            None,
            None,
        )
        terms = self._repair_terms(kind, repair_item, home, opened)
        ticket.in_warranty = terms["in_warranty"]
        assign_on = "reply" if kind == "enquiry" else "assess"
        for action, at in steps:
            if at > now:
                break
            if action == "pause":
                before_pause = status
            target = before_pause if action == "resume" else rules.next_status(kind, status, action)
            note = NOTES.get(action)
            if action == "assess":
                note = (
                    terms["verdict"]
                    if kind == "repair"
                    else f"严重程度 {rules.SEVERITIES[severity]}，类别 {CATEGORIES[category]}"
                )
                if expectations:
                    note += f"，客户期望 {'、'.join(EXPECTATIONS[e] for e in expectations)}"
            if action == "close" and kind == "repair":
                note = "维修完工，业主现场确认：已修复，业主签字确认"
            log(at, ticket.owner.name, action, note, status, target)
            status = target
            if action == assign_on:
                assessed_at = at
                log(at, self.actor, "assign", f"派给 {team.name}：{owner.name}", status, status)
                if severity == "major":
                    ticket.escalations.append(("major", at))
            reply_at = at if action == "reply" else reply_at
            closed_at = at if action == "close" else closed_at

        # What the periodic clock check found (rules.clock_findings, as sla.check_clocks).
        found = rules.clock_findings(
            now, response_due, resolve_due, warn_at,
            first_response if first_response <= now else None, closed_at or paused_at,
        )  # fmt: skip
        warned_at = found.get("warning")
        response_breached = "response_breach" in found
        resolve_breached = "resolve_breach" in found
        self._log_findings(ticket, found, response_due, resolve_due)
        breached_at = min(
            (found[k] for k in ("response_breach", "resolve_breach") if k in found), default=None
        )

        # Revisit (until the customer is satisfied), then the feedback step.
        revisited_at = completed_at = None
        reopened = 0
        if closed_at is not None and kind in REVISITED and draft.outcome == "normal":
            after = self._revisits(ticket, closed_at, resolve_breached, policy, calendar)
            if after is not None:
                status, closed_at, revisited_at, reopened, clock = after
                if clock is not None:
                    response_due, resolve_due, warn_at = clock
                    warned_at = None
                    again = rules.clock_findings(now, None, resolve_due, None, None, closed_at)
                    if "resolve_breach" in again:
                        self._log_findings(ticket, again, response_due, resolve_due)
                        resolve_breached = True
                        breached_at = breached_at or resolve_due
        root_cause = corrective = None
        ready = revisited_at if kind == "complaint" else closed_at if kind == "suggestion" else None
        if ready is not None and status in ("revisited", "closed") and rng.random() < 0.85:
            at = ready + dt.timedelta(hours=rng.uniform(4, 120))
            if at <= now:
                if kind == "suggestion":
                    root_cause, corrective = "业主建议", "已采纳并纳入改进计划"
                else:
                    root_cause, corrective = self._one(ROOT_CAUSES[category])
                note = f"根本原因：{root_cause}；纠正措施：{corrective}"
                log(at, ticket.owner.name, "feedback", note, status, "completed")
                status, completed_at = "completed", at

        group_id = None
        if draft.outcome == "group" and self.group is not None:
            at = max(self.group["detected_at"], opened + dt.timedelta(minutes=5))
            if at <= now:
                group_id, name = self.group["id"], self.group["number"]
                log(at, self.actor, "group", f"并入群诉 {name}")
                ticket.group_at = (at, f"群诉 {name}")
        level = self._escalate(ticket)
        if (
            kind == "complaint"
            and reply_at is not None
            and (severity in ("major", "hot") or rng.random() < PROMISE)
        ):
            self._commitments(ticket, reply_at, closed_at, draft.outcome == "overdue")
        self._work_orders(
            ticket,
            assessed_at,
            reply_at,
            closed_at,
            revisited_at,
            completed_at,
            resolve_due,
            repair_item,
        )

        if kind == "complaint" and completed_at is not None:
            self._causes(ticket, resolve_breached)

        paid, signed = terms["paid"], False
        fee_rate = fee_amount = fee_stated_at = None
        if paid and assessed_at is not None:
            fee_rate = self._one(FEE_RATES)
            fee_stated_at = assessed_at
            if closed_at is not None:
                fee_amount = Decimal(self._int(4, 40) * 5)
                signed = True
        self.stats[kind] += 1
        self.stats["open"] += status not in rules.CLOSED_STATUSES
        self.stats["breached"] += resolve_breached
        self.stats["reopened"] += reopened
        if draft.outcome != "normal":
            self.samples.setdefault(draft.outcome, number)
        result = None
        if closed_at is not None:
            result = "已修复，业主签字确认" if kind == "repair" else NOTES["close"]
        row = {
            "id": tid,
            "number": number,
            "ticket_type": kind,
            "channel": channel,
            "origin": rules.CUSTOMER,
            "household_id": home.household_id,
            "unit_id": home.unit_id,
            "project_id": home.project_id,
            "building_id": home.building_id,
            "summary": summary,
            "status": status,
            "severity": severity,
            "category": category,
            "expectations": expectations,
            "team_id": team.id,
            "owner_id": ticket.owner.id,
            "escalation_level": level,
            "group_id": group_id,
            "reported_by": reporter,
            "opened_at": opened,
            "first_response_at": first_response if first_response <= now else None,
            "replied_at": reply_at,
            "closed_at": closed_at,
            "revisited_at": revisited_at,
            "completed_at": completed_at,
            "customer_confirmed": closed_at is not None,
            "result": result,
            "response_due_at": response_due,
            "resolve_due_at": resolve_due,
            "paused_at": paused_at,
            "paused_minutes": paused_minutes,
            "warned_at": warned_at,
            "resolve_warn_at": warn_at,
            "response_breached": response_breached,
            "resolve_breached": resolve_breached,
            "breached_at": breached_at,
            "reopen_count": reopened,
            "severity_raises": 0,
            "root_cause": root_cause,
            "corrective_action": corrective,
            "repair_item": repair_item,
            "in_warranty": terms["in_warranty"],
            "paid": paid,
            "fee_rate": fee_rate,
            "fee_amount": fee_amount,
            "fee_signed_off": signed,
            "fee_stated_at": fee_stated_at,
            "fee_signed_by": home.name.removesuffix("家") if signed else None,
            "fee_signed_at": closed_at if signed else None,
            "warranty_until": terms["warranty_until"],
            "rework_of_id": None,
            "arrived_at": ticket.arrived,
            "version": 1,
            "created_at": opened,
            "updated_at": log.close(
                self.rows["svc_ticket_events"], lambda: self._next("svc_ticket_events")
            ),
        }
        self.rows["svc_tickets"].append(row)
        self.rows["service_records"].append(register.entry(SimpleNamespace(**row), opened))
        return row

    def _causes(self, ticket: _Ticket, late: bool) -> None:
        """Why the customer complained, recorded at the feedback step: one or two causes of
        the category, a broken promise when one was broken, "no one listens" when it ran
        late. Drawn from a stream of its own per ticket, so the rest stays as it was."""
        draw = random.Random(self.seed * 15_485_863 + ticket.id)
        pool = CAUSES_BY_CATEGORY.get(ticket.category, ("expectation_unmet",))
        causes = draw.sample(pool, 2 if draw.random() < 0.35 else 1)
        # This ticket's promises are the last ones written.
        mine = itertools.takewhile(
            lambda c: c["ticket_id"] == ticket.id, reversed(self.rows["svc_commitments"])
        )
        if any(c["status"] == "broken" for c in mine):
            causes.append("broken_promise")
        if late and draw.random() < 0.5:
            causes.append("not_heeded")
        causes = list(dict.fromkeys(causes))
        for cause in causes:
            self.rows["svc_ticket_causes"].append(
                {"id": self._next("svc_ticket_causes"), "ticket_id": ticket.id, "cause": cause}
            )
        labels = "、".join(COMPLAINT_CAUSES[c] for c in causes)
        for event in reversed(ticket.log.events):
            if event["action"] == "feedback":
                event["note"] += f"；投诉原因：{labels}"
                break
        self.causes[ticket.number] = causes

    def _repair_terms(self, kind: str, item: str | None, home: _Home, opened) -> dict:
        """A repair's warranty verdict (as repairs.check_warranty words it), free or paid."""
        if kind != "repair":
            return {"in_warranty": None, "paid": None, "warranty_until": None, "verdict": ""}
        months = self.warranty[item]
        until = add_months(home.handover, months)
        reported = to_local(opened).date()
        in_warranty = months > 0 and reported < until
        label = WARRANTY_ITEMS[item].label
        reason = (
            f"{label}不属保修范围"
            if months == 0
            else f"交房 {home.handover}，{label}保修 {months} 个月至 {until}，"
            f"报修日 {reported}{'在' if in_warranty else '已过'}保修期"
        )
        verdict = "免费维修" if in_warranty else "收费维修：开工前须说明收费标准"
        return {
            "in_warranty": in_warranty,
            "paid": not in_warranty,
            "warranty_until": until,
            "verdict": f"保修判断：{reason}。{verdict}。",
        }

    def _log_findings(self, ticket: _Ticket, found: dict, response_due, resolve_due) -> None:
        """The events the clock check writes for its findings; a breach is a cause to climb."""
        notes = {
            "warning": f"即将超时预警：须于 {self._hm(resolve_due)} 前解决。",
            "response_breach": f"首次响应超时：应于 {self._hm(response_due)} 前响应。",
            "resolve_breach": f"解决超时：应于 {self._hm(resolve_due)} 前解决。",
        }
        for kind, at in found.items():
            ticket.log(at, self.actor, kind, notes[kind])
            if kind != "warning":
                ticket.escalations.append(("breach", at))

    def _revisits(self, ticket: _Ticket, closed_at, breached: bool, policy, calendar):
        """The revisit after closing, until the customer is satisfied: a CSAT at or below
        rules.DISSATISFIED_CSAT reopens the ticket (fresh clocks), or now and then a manager
        records why it need not be. Returns (status, closed_at, revisited_at, reopened, new
        clock) or None."""
        rng, now = self.rng, self.now
        if rng.random() >= REVISITED[ticket.kind]:
            return None
        at = closed_at + dt.timedelta(
            hours=rng.uniform(1, 23) if ticket.kind == "repair" else rng.uniform(2, 72)
        )
        if at > now:
            return None
        csat = self.csat[breached](rng)
        self._revisit(ticket, at, closed_at, csat)
        if csat > rules.DISSATISFIED_CSAT:
            return "revisited", closed_at, at, 0, None
        if rng.random() < OVERRIDDEN:
            self._override(ticket, at)
            return "revisited", closed_at, at, 0, None
        reopen_at = at + dt.timedelta(minutes=self._int(5, 60))
        if reopen_at > now:  # the reopening is the next thing staff do
            reopen_at = at
        note = f"回访不满意（满意度 {csat}）"
        ticket.log(reopen_at, ticket.owner.name, "reopen", note, "revisited", "investigating")
        ticket.escalations.append(("reopen", reopen_at))
        due = sla.due_times(policy, reopen_at, 0.0, calendar)
        clock = (due["response_due_at"], due["resolve_due_at"], due["resolve_warn_at"])
        again = sla.add_minutes(reopen_at, policy.resolve_minutes * rng.uniform(0.4, 0.9), calendar)
        if again > now:
            return "investigating", None, at, 1, clock
        ticket.log(
            again, ticket.owner.name, "close", "返工完成，业主确认", "investigating", "closed"
        )
        second = again + dt.timedelta(hours=rng.uniform(2, 24))
        if second > now:
            return "closed", again, at, 1, clock
        # After the rework the customer is satisfied (a second disappointment is overridden).
        csat = max(rules.DISSATISFIED_CSAT + 1, self.csat[False](rng))
        self._revisit(ticket, second, again, csat)
        return "revisited", again, second, 1, clock

    def _override(self, ticket: _Ticket, at: dt.datetime) -> None:
        manager = self._level(rules.MANAGER, ticket.team.id)
        reason = self._one(OVERRIDE_REASONS)
        ticket.log(
            at + dt.timedelta(minutes=1),
            manager.name if manager else self.actor,
            "override",
            f"客户不满意，经理确认不再处理：{reason}",
        )

    def _revisit(self, ticket: _Ticket, at: dt.datetime, closed_at, csat: int) -> None:
        rng = self.rng
        nps, pairs = answers(rng, csat, ASPECTS[ticket.kind])
        comment = (
            self._one(GOOD_COMMENTS) if csat >= 4 and rng.random() < 0.3
            else self._one(BAD_COMMENTS) if csat <= 2 else None
        )  # fmt: skip
        caller = self._front(self.centre.id).name
        note = f"满意度 {csat}，推荐意愿 {nps}" + (f"；客户意见：{comment}" if comment else "")
        ticket.log(at, caller, "revisit", note, "closed", "revisited")
        ticket.revisit_notes.append((at, note))
        facts = TicketFacts(
            number=ticket.number,
            ticket_type=ticket.kind,
            household_id=ticket.home.household_id,
            project_id=ticket.home.project_id,
            team=ticket.team.code,
            category=ticket.category,
            severity=ticket.severity,
            closed_at=closed_at,
        )
        self.revisits.append(Revisit(facts, at, csat, nps, pairs, comment, caller))

    def _escalate(self, ticket: _Ticket) -> int:
        """As escalation.escalate_ticket: rules.climb over the causes in the order they arose,
        then the group's owner; returns the level."""
        causes = sorted((c for c in ticket.escalations if c[1] <= self.now), key=lambda c: c[1])
        level, fired = 1, []
        for cause, at in causes:
            for rule, target in rules.climb(level, [cause], fired):
                reason = rules.ESCALATION_REASONS[rule]
                level = max(level, self._fire(ticket, rule, target, at, reason))
                fired.append((rule, target))
        if ticket.group_at is not None:
            at, reason = ticket.group_at
            leader = rules.TOP if self._level(rules.TOP, self.centre.id) else rules.MANAGER
            level = max(level, self._fire(ticket, "group", leader, at, reason))
        return level

    def _fire(self, ticket: _Ticket, rule: str, target: int, at, reason: str) -> int:
        to = self._level(target, ticket.team.id)
        names = rules.LEVELS
        who = f"{names[target]} {to.name}" if to else f"{names[target]}（未登记该级人员）"
        note = f"升级至第 {target} 级（{who}）：{reason}"
        self.rows["svc_escalations"].append(
            {
                "id": self._next("svc_escalations"),
                "ticket_id": ticket.id,
                "rule": rule,
                "level": target,
                "to_staff_id": to.id if to else None,
                "fired_at": at,
                "note": note,
            }
        )
        ticket.log(at, self.actor, "escalate", note)
        if rule == "major" and to is not None:  # the manager takes the ticket over
            ticket.owner = to
        return target

    def _commitments(self, ticket: _Ticket, reply_at, closed_at, overdue: bool) -> None:
        """The promise made in the reply; a broken one is apologised for and made again."""
        rng, now, log = self.rng, self.now, ticket.log
        who = ticket.owner.name

        def promise(at, what, due, status, settled=None, settlement=(None, None, None)):
            apology, reason, remedy = settlement
            self.rows["svc_commitments"].append(
                {
                    "id": self._next("svc_commitments"),
                    "ticket_id": ticket.id,
                    "what": what,
                    "due_at": due,
                    "promised_by": who,
                    "status": status,
                    "settled_at": settled,
                    "apology": apology,
                    "reason": reason,
                    "remedy": remedy,
                    "created_at": at,
                    "updated_at": settled or at,
                }
            )
            log(at, who, "promise", f"{who} 承诺于 {self._hm(due)} 前{what}")
            self.stats["commitments"] += 1
            if status == "kept":
                log(settled, who, "commitment_kept", f"承诺已兑现：{what}")
            elif status == "broken":
                self.stats["broken"] += 1
                log(
                    due,
                    self.actor,
                    "commitment_broken",
                    f"承诺未兑现：{who} 承诺于 {self._hm(due)} 前{what}；须向客户致歉、说明原因并提出补救。",
                )
                if settled is not None:
                    log(
                        settled,
                        who,
                        "commitment_settled",
                        f"致歉：{apology}；原因：{reason}；补救：{remedy}",
                    )

        what = self._one(PROMISES)
        if closed_at is not None:
            if rng.random() < BROKEN:
                due = reply_at + (closed_at - reply_at) * rng.uniform(0.3, 0.6)
                settled = min(closed_at, due + dt.timedelta(minutes=self._int(10, 120)))
                promise(reply_at, what, due, "broken", settled, SETTLEMENT)
                again = closed_at + dt.timedelta(minutes=self._int(30, 600))
                promise(settled, SETTLEMENT[2], again, "kept", closed_at)
            else:
                due = closed_at + dt.timedelta(minutes=self._int(30, 1440))
                promise(reply_at, what, due, "kept", closed_at)
        elif overdue and rng.random() < 0.6:
            due = reply_at + (now - reply_at) * rng.uniform(0.3, 0.8)
            promise(reply_at, what, due, "broken")
        else:
            promise(reply_at, what, now + dt.timedelta(minutes=self._int(60, 2880)), "open")

    def _work_orders(
        self, ticket: _Ticket, assessed_at, reply_at, closed_at, revisited_at, completed_at,
        resolve_due, repair_item,
    ) -> None:  # fmt: skip
        """Dispatch notices under the ticket's number: remedial and corrective actions for
        complaints; the repair job (now and then returned to the supervisor) and the
        mandatory phone revisit for repairs."""
        if assessed_at is None:
            return
        rng, team = self.rng, ticket.team
        count = 0

        def order(kind, description, to, created, due, done, result, parent=None, returned=None):
            nonlocal count
            count += 1
            number = f"{ticket.number}-{count:02d}"
            oid = self._next("svc_work_orders")
            finished = done is not None and done <= self.now and returned is None
            cost, cost_kind = self._cost(ticket, kind) if finished else (None, None)
            arrived = None
            if finished and kind in ("remedial", "repair"):
                # On site a quarter of the way from dispatch to done (a fixed share, so the
                # rest of the demo draws as before).
                arrived = created + (done - created) / 4
                ticket.arrived = min(ticket.arrived or arrived, arrived)
            self.rows["svc_work_orders"].append(
                {
                    "id": oid,
                    "number": number,
                    "ticket_id": ticket.id,
                    "household_id": ticket.home.household_id,
                    "project_id": ticket.home.project_id,
                    "origin": rules.CUSTOMER,
                    "kind": kind,
                    "description": description,
                    "team_id": to.team_id,
                    "assignee_id": to.id,
                    "status": "returned" if returned else "done" if finished else "open",
                    "due_at": due,
                    "completed_at": done if finished else None,
                    "completion_entered_at": done if finished else None,
                    "returned_reason": returned[1] if returned else None,
                    "returned_at": returned[0] if returned else None,
                    "parent_id": parent,
                    "skill": "木工" if returned and "木工" in returned[1] else None,
                    "arrived_at": arrived,
                    "cost": cost,
                    "cost_kind": cost_kind,
                    "result": result if finished else None,
                    "created_at": created,
                    "updated_at": (returned[0] if returned else done if finished else created),
                }
            )
            label = rules.WORK_ORDER_KINDS[kind]
            ticket.log(
                created,
                self.actor,
                "dispatch",
                f"派工单 {number}（{label}）→ {self._team_name(to)}：{to.name}，时限 {self._hm(due)}",
            )
            if arrived is not None:
                ticket.log(arrived, to.name, "arrive", f"{to.name} 到场（派工单 {number}）")
            if finished:
                ticket.log(done, to.name, "work_done", f"派工单 {number} 完成：{result}")
            if returned:
                ticket.log(
                    returned[0],
                    to.name,
                    "work_returned",
                    f"派工单 {number} 超出能力，退回主管：{returned[1]}",
                )
            self.stats["work_orders"] += 1
            return oid

        worker = self._front(team.id)
        due = max(resolve_due, assessed_at + dt.timedelta(hours=2))
        if ticket.kind == "complaint":
            if ticket.severity in ("major", "hot") or rng.random() < 0.6:
                done = closed_at or reply_at
                order(
                    "remedial",
                    f"补救措施：{ticket.summary}",
                    worker,
                    assessed_at,
                    due,
                    done,
                    "已现场处理，业主确认",
                )
            if ticket.severity == "major" and reply_at is not None:
                supervisor = self._level(2, team.id) or worker
                order(
                    "corrective",
                    "纠正措施：查找根本原因并整改，防止再次发生",
                    supervisor,
                    reply_at,
                    reply_at + dt.timedelta(days=14),
                    completed_at,
                    "整改完成，已纳入作业指引",
                )
        elif ticket.kind == "repair":
            description = f"维修：{ticket.summary}"
            if closed_at is not None and rng.random() < RETURNED:
                at = assessed_at + (closed_at - assessed_at) * 0.3
                reason = f"超出本人技能：需要专业{'木工' if repair_item == 'home_service' else '技师'}，业主希望尽快上门"
                first = order(
                    "repair",
                    description,
                    worker,
                    assessed_at,
                    due,
                    None,
                    None,
                    returned=(at, reason),
                )
                supervisor = self._level(2, team.id) or worker
                order(
                    "repair",
                    f"{description}\n【退回主管】{reason}",
                    supervisor,
                    at,
                    due,
                    closed_at,
                    "主管协调专业人员完成",
                    parent=first,
                )
                self.stats["returned"] += 1
            else:
                order(
                    "repair",
                    description,
                    worker,
                    assessed_at,
                    due,
                    closed_at,
                    "已修复，业主签字确认",
                )
            if closed_at is not None:
                order(
                    "revisit",
                    "维修完成后电话回访：确认修复效果与收费无异议（维修后 100% 回访）。",
                    self._front(self.centre.id),
                    closed_at,
                    closed_at + dt.timedelta(hours=24),
                    revisited_at,
                    # As the revisit itself writes it (tickets.revisit).
                    f"回访完成：{ticket.revisit_notes[-1][1]}" if ticket.revisit_notes else None,
                )

    def _money(self, median: float, spread: float, cap: float | None = None) -> Decimal:
        amount = median * self.costs.lognormvariate(0.0, spread)
        return Decimal(f"{min(amount, cap) if cap else amount:.2f}")

    def _cost(self, ticket: _Ticket, kind: str) -> tuple[Decimal | None, str | None]:
        """What a done work order cost the company: a repair's labour and parts (all of it
        in warranty, what the fee leaves uncovered past it), compensation on some
        complaints' remedial actions."""
        if kind == "repair":
            median, spread = REPAIR_COST[ticket.in_warranty]
            return self._money(median, spread, REPAIR_COST_CAP), "repair"
        if kind == "remedial":
            chance, median = COMPENSATION[ticket.severity]
            if self.costs.random() < chance:
                return self._money(median, 0.7), "compensation"
        return None, None

    def _fund(self, owners: list[_Home]) -> None:
        """Two years of each project's 一路同行 loyalty fund: owner activities with their
        sign-ups, gifts, a care spend for the project, owners' contributions, and the yearly
        allocation from profit that pays for them (booked first, so the balance never falls
        below zero)."""
        rng, now = self.costs, self.now
        today = to_local(now).date()
        start = today - dt.timedelta(days=SPAN_DAYS)
        by_project: dict[int, list[_Home]] = defaultdict(list)
        seen: set[tuple[int, int]] = set()
        for home in owners:  # one entry per flat: a household once per project
            key = (home.project_id, home.household_id)
            if home.project_id is not None and key not in seen:
                seen.add(key)
                by_project[home.project_id].append(home)

        def moment(year: int) -> dt.datetime:
            first = max(start, dt.date(year, 1, 1))
            last = min(today - dt.timedelta(days=1), dt.date(year, 12, 31))
            day = first + dt.timedelta(days=rng.randint(0, max((last - first).days, 0)))
            hour = dt.time(rng.randint(9, 17), rng.choice((0, 30)))
            return dt.datetime.combine(day, hour, self.zone).astimezone(dt.UTC)

        def entry(project, kind, amount, year, at, household=None, activity=None, note=None):
            self.rows["svc_loyalty_fund_entries"].append(
                {
                    "id": self._next("svc_loyalty_fund_entries"),
                    "project_id": project,
                    "household_id": household,
                    "kind": kind,
                    "amount": amount,
                    "year": year,
                    "at": at,
                    "activity_id": activity,
                    "work_order_id": None,
                    "note": note,
                    "by": self.actor,
                    "created_at": at,
                    "updated_at": at,
                }
            )

        for project, homes in sorted(by_project.items()):
            for year in range(start.year, today.year + 1):
                if dt.date(year, 12, 31) < start or dt.date(year, 1, 1) >= today:
                    continue
                opened = moment(year)
                spent: list[tuple] = []
                for name in rng.sample(ACTIVITIES, 2):
                    held = moment(year)
                    present = [h for h in homes if h.handover and h.handover <= held.date()]
                    places = min(len(present), max(10, round(len(homes) * ACTIVITY_SHARE)))
                    if not places:
                        continue
                    aid = self._next("svc_reward_activities")
                    cost = Decimal(places * ACTIVITY_PLACE_COST)
                    self.rows["svc_reward_activities"].append(
                        {
                            "id": aid,
                            "name": f"{year} {name}",
                            "project_id": project,
                            "held_at": held,
                            "capacity": places,
                            "cost": cost,
                            "created_at": held - dt.timedelta(days=14),
                            "updated_at": held,
                        }
                    )
                    for home in rng.sample(present, places):
                        self.rows["svc_activity_signups"].append(
                            {
                                "id": self._next("svc_activity_signups"),
                                "activity_id": aid,
                                "household_id": home.household_id,
                                "signed_up_at": held - dt.timedelta(days=rng.randint(1, 14)),
                                "attended": rng.random() < TURN_UP,
                                "created_at": held - dt.timedelta(days=14),
                                "updated_at": held,
                            }
                        )
                    spent.append(("activity", cost, held, None, aid, name))
                for home in homes:
                    if rng.random() < GIFT_SHARE:
                        gift = Decimal(rng.randint(4, 16) * 50)
                        spent.append(
                            ("gift", gift, moment(year), home.household_id, None, "节日礼品")
                        )
                    if rng.random() < CONTRIBUTION_SHARE:
                        given = Decimal(rng.randint(5, 20) * 100)
                        at = moment(year)
                        entry(project, "contribution", given, year, at, home.household_id)
                care = Decimal(rng.randint(10, 40) * 500)
                spent.append(("care", care, moment(year), None, None, "公共设施维护与业主关怀"))
                total = sum(amount for _, amount, *_ in spent)
                allocation = (total * Decimal("1.2")).quantize(Decimal(1))
                first = min([opened, *(at for _, _, at, *_ in spent)]) - dt.timedelta(hours=1)
                entry(project, "allocation", allocation, year, first, note="年度利润拨付")
                for kind, amount, at, household, activity, note in spent:
                    entry(project, kind, amount, year, at, household, activity, note)

    def _team_name(self, person: _Person) -> str:
        return next(t.name for t in self.teams if t.id == person.team_id)

    # the whole run -------------------------------------------------------------------------

    def _group_row(self, drafts: list[_Draft]) -> None:
        """Detected when the third household complained; led by the general manager."""
        opened = sorted(d.opened for d in drafts)
        detected = opened[min(2, len(opened) - 1)] + dt.timedelta(minutes=10)
        owner = self._level(4, self.centre.id) or self._level(3, self.centre.id)
        home = drafts[0].home
        self.group = {
            "id": self._next("svc_group_complaints"),
            "number": rules.number(rules.number_head(rules.GROUP_PREFIX, detected), 1),
            "project_id": home.project_id,
            "building_id": home.building_id,
            "category": "engineering",
            "phase": "emerging",
            "owner_id": owner.id if owner else None,
            "status": "open",
            "detected_at": detected,
            "households": len({d.home.household_id for d in drafts}),
            "topic": "地下车库积水，车辆受损",
            "created_at": detected,
            "updated_at": detected,
        }
        self.rows["svc_group_complaints"].append(self.group)

    def _flush(self) -> None:
        for name in WRITTEN:
            rows = self.rows.pop(name, [])
            write_rows(self.session, self.tables[name], rows)
            self.stats[f"rows.{name}"] += len(rows)
        # Rows whose ids come from the database: the project managers, and each ticket's
        # entry in the core service register (register.py).
        write_rows(
            self.session, ProjectManager.__table__, self.rows.pop("svc_project_managers", [])
        )
        write_rows(self.session, ServiceRecord.__table__, self.rows.pop("service_records", []))

    def build(self) -> list[str]:
        session = self.session
        households = session.scalar(select(func.count(Household.id))) or 0
        self.build_staff(households)
        drafts = self.drafts(households)
        grouped = [d for d in drafts if d.outcome == "group"]
        if grouped:
            self._group_row(grouped)
        self._flush()
        sequence: Counter[str] = Counter()
        for draft in drafts:
            head = rules.number_head(rules.PREFIXES[draft.kind], draft.opened)
            sequence[head] += 1
            self.ticket(draft, rules.number(head, sequence[head]))
            if len(self.rows["svc_tickets"]) >= BATCH:
                self._flush()
        self._fund(self.owners)
        self._flush()
        if self.group is not None:
            groups.plant(session, self.group["id"], self.now)
        if session.get_bind().dialect.name == "postgresql":
            # Ids were assigned here, so PostgreSQL's sequences must move past them.
            for name in WRITTEN:
                session.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
                    ),
                    {"name": name},
                )
        counts = {name: self.stats[f"rows.{name}"] for name in WRITTEN}
        audit.record(
            session,
            "demo_data",
            "svc_tickets",
            changes=counts,
            detail=f"演示数据：服务工单 {counts['svc_tickets']} 张，员工 {counts['svc_staff']} 人",
        )
        session.info["pm"].hook.tickets_revisited(session=session, revisits=self.revisits)
        session.info["pm"].hook.ticket_causes_recorded(session=session, causes=self.causes)
        return self.summary(counts)

    def summary(self, counts: dict[str, int]) -> list[str]:
        stats = self.stats
        kinds = "、".join(
            f"{label} {stats[kind]:,}"
            for kind, label in (
                ("complaint", "投诉"),
                ("repair", "报修"),
                ("suggestion", "建议"),
                ("enquiry", "咨询"),
            )
        )
        group = f"，群诉 1 起（{self.group['number']}）" if self.group else ""
        hints = ["crm ticket list --overdue", "crm ticket list --at-risk"]
        if "overdue" in self.samples:
            hints.append(f"crm ticket show {self.samples['overdue']}")
        hints.append("crm ticket groups" if self.group else "crm workorder list --overdue")
        return [
            (
                f"服务工单  {counts['svc_tickets']:,} 张（{kinds}；处理中 {stats['open']:,}，"
                f"超时 {stats['breached']:,}，重新处理 {stats['reopened']:,}）"
            ),
            (
                f"派工单    {counts['svc_work_orders']:,} 张（退回主管 {stats['returned']:,}）；"
                f"承诺 {stats['commitments']:,} 项（未兑现 {stats['broken']:,}）；"
                f"升级 {counts['svc_escalations']:,} 次{group}"
            ),
            (
                f"服务员工  {counts['svc_staff']:,} 人，分属 {len(self.teams)} 个团队"
                "（一线、主管、经理、总经理）"
            ),
            f"试试：{'、'.join(hints)}",
        ]


def build_demo_data(session: Session, seed: int, now: dt.datetime) -> list[str]:
    """Staff and two years of tickets for the demo portfolio; returns the summary lines."""
    if not session.scalar(select(func.count(Team.id))):
        return []  # no team to dispatch to (prepare_database makes the defaults)
    return _Builder(session, seed, now).build()
