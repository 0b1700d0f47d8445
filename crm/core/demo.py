"""A realistic sample portfolio for `crm demo`: projects, buildings, units, households with
members, purchases, referrals and service records, written in bulk into a fresh database.

Everything is drawn from one seed, so the same seed and `now` give the same data (dates are
counted back from `now`, by default the moment it runs, on the business zone's calendar). Rows
are generated as dicts with ids assigned here and inserted with Core executemany in batches;
the ORM audit hook does not see them, so one `demo` audit entry records the counts instead.

Rates used (DOMAIN.md reference figures in brackets):

| what                                                  | rate                              |
|-------------------------------------------------------|-----------------------------------|
| prospective households (准客户, no purchase)          | 17 %                              |
| buyers who are member-club (万客会) members           | 45 %                              |
| first purchases made through a referral (老带新)      | 52 %, which is 35-42 % of all     |
|                                                       | sales once repeat sales count     |
|                                                       | [30-50 % of sales]                |
| referrer: an earlier buyer, club members twice as     |                                   |
| likely to be picked                                   | [48.5 % would recommend]          |
| a buyer whose first purchase is 8+ months old has     | club member 65.3 %, others 10 %   |
| bought again, 8 months to 5 years after the first     | [万客会 members' repeat purchase  |
| (before today, while a project is on sale)            | rate 65.3 %: of member owners,    |
|                                                       | not of repeat buyers]             |
| repeat buyer buys a third unit                        | 15 %                              |
| spouse as co-owner / child / parent in the household  | 60 % / 50 % (owner 30+) / 12 %    |
| tenant member: one-unit / multi-unit households       | 5 % / 50 %                        |
| off-plan sale (before completion): handover after     | 12-30 months; otherwise 1-3       |
| (none while that date is still ahead)                 | months                            |
| service records per handed-over purchase: move-in 1,  | title certificate 90 %, repair    |
|                                                       | 25 % a year (first 6 years),      |
|                                                       | complaint 25 % (a fifth of them   |
|                                                       | twice), property service 45 % (a  |
|                                                       | third twice), suggestion 12 %,    |
|                                                       | care visit 25 %, 四年之约 visit   |
|                                                       | 85 % every 4 years                |
| records opened in the last 60 days still open         | 25 % (and any not yet due closed) |

Eight fictional projects in eight cities launch 700-3,900 days back, each on sale for 1,500
days and complete 720 days after launch; prices per m² follow the city and rise 3.5 % a year.
Measured at 30,000 households (seed 2026): 37.7 % of sales by referral, 33.1 % of buyers
bought again, and 65.6 % of the member buyers who could have; about 5 service records per
buying household.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import MetaData, Table, delete, func, insert, select, text
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.clock import add_months, local_today, local_zone
from crm.core.errors import CrmError, PermissionDenied
from crm.core.identity import id_check_digit
from crm.core.models import (
    AuditEntry,
    Building,
    Household,
    Member,
    Project,
    Purchase,
    Referral,
    ServiceRecord,
    Setting,
    Unit,
    utcnow,
)
from crm.core.privacy import seal_member_fields
from crm.core.security import Vault

MARKER = "demo.generated_at"
# What the demo left in each of its tables, {table: [rows, highest id]}: a row added or
# imported later (a higher id, or more rows) shows the database holds more than the demo.
ROWS = "demo.rows"
BATCH = 1000
# Insert order: every row's foreign keys point to rows inserted before it.
TABLES: tuple[Table, ...] = tuple(
    m.__table__
    for m in (Project, Building, Unit, Household, Member, Purchase, Referral, ServiceRecord)
)

PROSPECTIVE = 0.17
REFERRAL = 0.52
# Of the buyers who could have bought again (first purchase at least REPEAT_GAP[0] days ago):
# the share that did. The seed's 65.3 % is the repeat-purchase rate of 万客会 member owners.
REPEAT_MEMBER, REPEAT_OTHER, THIRD = 0.653, 0.10, 0.15
REPEAT_GAP = (240, 1800)  # days from one purchase to the next
SALE_WINDOW = 1500  # days a project is on sale after launch
BUILD_TIME = 720  # days from launch to completion; sales before that are off-plan


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    city: str
    abbr: str  # contract-number prefix
    price: int  # yuan per m² at launch
    launch_days_ago: int
    style: str  # how unit codes are written: tower 1903, stair 12-1A, villa 2A-1B
    areas: tuple[int, ...]  # floor areas of the flat types, m²
    districts: tuple[str, ...]  # local region codes (ID numbers of local buyers)


# fmt: off
PROJECTS = (
    ProjectSpec("翠湖花园", "杭州", "CHHY", 31000, 3900, "tower", (89, 98, 118, 136),
                ("330106", "330108", "330110")),
    ProjectSpec("滨江壹号", "武汉", "BJYH", 17500, 3450, "stair", (92, 108, 125, 143),
                ("420106", "420103", "420111")),
    ProjectSpec("锦绣澜山", "成都", "JXLS", 14500, 3000, "villa", (138, 165, 188, 215),
                ("510104", "510107", "510108")),
    ProjectSpec("海棠湾畔", "深圳", "HTWP", 62000, 2550, "tower", (78, 89, 105, 128),
                ("440303", "440304", "440305")),
    ProjectSpec("松林雅苑", "南京", "SLYY", 28500, 2100, "stair", (88, 99, 120, 140),
                ("320102", "320106", "320104")),
    ProjectSpec("望江府", "长沙", "WJF", 11500, 1650, "tower", (95, 115, 128, 143),
                ("430102", "430104", "430105")),
    ProjectSpec("紫荆名邸", "西安", "ZJMD", 14000, 1200, "stair", (89, 110, 129, 156),
                ("610113", "610104", "610102")),
    ProjectSpec("春和景明", "上海", "CHJM", 66000, 700, "villa", (120, 145, 170, 198),
                ("310115", "310104", "310105")),
)
# Buyers from elsewhere in the country.
OTHER_DISTRICTS = ("110105", "120101", "370202", "411302", "340104", "350203", "440106",
                   "500103", "130102", "210102", "360102", "450103")
MOBILE_PREFIXES = ("130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150",
                   "151", "152", "153", "155", "156", "157", "158", "159", "166", "177", "180",
                   "181", "182", "183", "185", "186", "187", "188", "189", "198", "199")
CLUBS = ("业主足球队", "摄影协会", "亲子读书会", "羽毛球俱乐部", "太极拳队", "业主合唱团",
         "书法协会", "跑步团", "垂钓协会")
# fmt: on

SUMMARIES = {
    "complaint": (
        "{unit} 室阳台地漏堵塞，雨水倒灌进屋；业主两次来电，安全员判断不严重未上报",
        "{unit} 室卫生间漏水，楼下住户天花板受潮",
        "外墙渗水，{unit} 室卧室墙面发霉",
        "车位纠纷：业主的固定车位被他人长期占用",
        "物业费疑问：对本年度物业费上涨不理解，要求公示收费明细",
        "对讲机维修后次日再次故障，业主对收取维修费不满",
        "维修人员语气生硬，质疑业主投诉证据，业主要求道歉",
        "邻居装修超时施工，噪音影响休息",
        "公共走道被邻居鞋柜长期占用，多次反映未解决",
        "电梯频繁故障停运，老人出行不便",
        "小区绿地被个别住户种菜养鸭，气味扰民",
        "地下车库积水，车辆受损",
    ),
    "suggestion": (
        "建议暴雨台风前检查排水口，并提醒装修中、空置的住户",
        "建议增设儿童游乐设施和休息座椅",
        "建议延长会所开放时间",
        "建议在地下车库增加充电桩",
        "建议维修前先说明是否收费及收费标准",
        "建议增加亲子读书会等业主活动场次",
    ),
    "title_certificate": (
        "办理不动产权证书，提交购房合同与发票",
        "领取不动产权证书",
        "产权登记资料补交：缺少共有人身份证复印件",
        "按揭结清后办理抵押注销",
        "咨询契税发票与办证进度",
    ),
    "move_in": (
        "{unit} 室交房入伙：验房、领取钥匙并签署入伙确认书",
        "{unit} 室入伙验房，发现墙面空鼓，已登记整改",
        "{unit} 室入伙，办理水电气开户与门禁卡",
    ),
    "property_service": (
        "物业费疑问：咨询缴费方式与发票开具",
        "车位续租与停车卡办理",
        "门禁卡补办",
        "装修申请与装修押金办理",
        "电动车停放位置咨询",
        "家政保洁服务预约",
    ),
    "repair": (
        "{unit} 室对讲机按钮接触不良，上门更换",
        "{unit} 室阳台地漏堵塞疏通",
        "{unit} 室暖气管漏水维修",
        "{unit} 室马桶堵塞外溢",
        "{unit} 室入户门锁损坏更换",
        "外墙渗水修补（{unit} 室）",
        "{unit} 室厨房水龙头漏水",
        "{unit} 室电路跳闸检修",
    ),
    # Visits: care in the first year after move-in (嘘寒问暖), then the four-year appointment.
    "care_visit": (
        "嘘寒问暖：入住后节日走访",
        "嘘寒问暖：入住半年回访，了解居住感受",
        "入住后上门了解装修与设施使用情况",
    ),
    "four_year_visit": (
        "四年之约：上门走访，记录业主意见与建议",
        "四年之约：走访并检查房屋保修项目",
    ),
}
RESULTS = {
    "complaint": (
        "已现场处理并向业主致歉，业主确认满意",
        "已派工整改，回访业主满意",
        "已解释说明并提供书面材料，业主认可",
        "协调相关部门处理完毕，业主确认关闭",
    ),
    "suggestion": ("已采纳并纳入改进计划", "已转相关部门评估，并答复业主"),
    "title_certificate": ("已办结，业主领取证书", "资料已补齐，办理完成"),
    "move_in": ("入伙手续办理完毕",),
    "property_service": ("已办理完毕", "已答复业主"),
    "repair": ("已修复，业主签字确认，已电话回访", "已更换配件，收费事先告知并经业主签字"),
    "visit": ("走访记录已存档，意见已转交责任部门", "回访完成，业主满意"),
}
RECORD_PREFIX = {
    "complaint": "TS",
    "suggestion": "JY",
    "title_certificate": "QZ",
    "move_in": "RH",
    "property_service": "WY",
    "repair": "WX",
    "visit": "ZF",
}
# Minutes from opening to closing, per kind (complaints: general 30 min-6 h, major up to 10 days).
CLOSE_MINUTES = {
    "complaint": (30, 360),
    "suggestion": (1440, 20160),
    "title_certificate": (10080, 64800),
    "move_in": (60, 180),
    "property_service": (10, 240),
    "repair": (60, 4320),
    "visit": (60, 120),
}


class _Weighted:
    """A weighted choice by bisection: random.choices rebuilds its table on every call."""

    def __init__(self, weights: dict):
        self.values = list(weights)
        self.cum = list(itertools.accumulate(weights.values()))

    def __call__(self, rng: random.Random):
        return self.values[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


INCOME = {
    "high": _Weighted({"lt100k": 2, "100k_300k": 18, "300k_500k": 30, "500k_1m": 32, "gt1m": 18}),
    "mid": _Weighted({"lt100k": 6, "100k_300k": 34, "300k_500k": 32, "500k_1m": 20, "gt1m": 8}),
    "low": _Weighted({"lt100k": 14, "100k_300k": 46, "300k_500k": 26, "500k_1m": 10, "gt1m": 4}),
}
EDUCATION = _Weighted(
    {"below_high_school": 8, "high_school": 18, "college": 22, "bachelor": 38, "postgraduate": 14}
)
HOUSING_BUYER = _Weighted({"owns_one": 60, "owns_several": 22, "with_family": 12, "renting": 6})
HOUSING_PROSPECT = _Weighted({"renting": 40, "with_family": 25, "owns_one": 30, "owns_several": 5})
TIER_BUYER = _Weighted({"none": 55, "standard": 24, "silver": 12, "gold": 6, "platinum": 3})
TIER_PROSPECT = _Weighted({"none": 75, "standard": 25})
SALE_CHANNEL = _Weighted({"walk_in": 34, "agency": 26, "online": 14, "event": 20, "other": 6})
SERVICE_CHANNEL = {
    "complaint": _Weighted({"phone": 45, "visit": 20, "online": 20, "letter": 10, "fax": 5}),
    "suggestion": _Weighted({"online": 40, "visit": 30, "letter": 20, "phone": 10}),
    "title_certificate": _Weighted({"visit": 1}),
    "move_in": _Weighted({"visit": 1}),
    "property_service": _Weighted({"visit": 45, "phone": 40, "online": 15}),
    "repair": _Weighted({"phone": 70, "visit": 20, "online": 10}),
    "visit": _Weighted({"visit": 1}),
}


@dataclass
class DemoSummary:
    """What `build_demo` wrote, for the report and the "try next" hints."""

    counts: dict[str, int]
    prospective: int
    buyers: int
    referral_sales: int
    repeat_buyers: int
    member_repeat_buyers: int
    # Member buyers whose first purchase is old enough to have been followed by another.
    member_buyers_eligible: int
    service_by_kind: dict[str, int]
    open_records: int
    cities: list[str]
    sample_code: str
    sample_name: str
    sample_project: str
    rebuilt: bool
    seconds: float = 0.0
    # Lines the plugins' build_demo_data hooks returned (their tickets, surveys, …).
    plugin_lines: list[str] = field(default_factory=list)

    @property
    def referral_share(self) -> float:
        return self.referral_sales / max(self.counts["purchases"], 1)

    @property
    def repeat_share(self) -> float:
        return self.repeat_buyers / max(self.buyers, 1)

    @property
    def member_repeat_rate(self) -> float:
        """The member repeat-purchase rate (万客会会员重复购买率): of the member buyers who
        could have bought again, the share that did."""
        return self.member_repeat_buyers / max(self.member_buyers_eligible, 1)


def build_demo(
    session: Session,
    households: int = 3000,
    seed: int = 2026,
    progress: Callable[[int], None] | None = None,
    now: dt.datetime | None = None,
    replace: bool = False,
) -> DemoSummary:
    """Fill the database with a sample portfolio of `households` households.

    Refuses a database holding customer data not made by the demo, including a demo
    database to which customers were added or imported since; a database holding only the
    demo is emptied and built again when `replace` is set, by an administrator. `progress`
    is called with the number of households done per batch. Does not commit.
    """
    started = time.perf_counter()
    if households < 1:
        raise CrmError("演示数据至少需要 1 户客户家庭：请把 --households 设为正整数。")
    audit.current_user(session).require("household.write", "生成演示数据")
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # Hashed look-up keys sit on random index pages; a 256 MB page cache for this load
        # saves rereading them while deleting and inserting.
        cache_size = int(session.scalar(text("PRAGMA cache_size")))
        session.execute(text("PRAGMA cache_size=-262144"))
    try:
        before = _clear_previous_demo(session, replace)
        generator = _Generator(session.info["vault"], households, seed, now or utcnow())
        _insert(session, generator, progress)
    finally:
        if dialect == "sqlite":
            session.execute(text(f"PRAGMA cache_size={cache_size}"))
    if dialect == "postgresql":
        _advance_sequences(session)
    summary = generator.summary(rebuilt=before is not None)
    pm = session.info.get("pm")
    if pm is not None:
        for lines in pm.hook.build_demo_data(session=session, seed=seed, now=generator.now):
            summary.plugin_lines.extend(lines or [])
    session.flush()
    _set(session, MARKER, generator.now.isoformat())
    _set(session, ROWS, json.dumps(_fingerprint(session)))
    audit.record(
        session,
        "demo",
        "households",
        # Rows per table, before -> after: a rebuild shows what it replaced.
        changes={name: [(before or {}).get(name, 0), n] for name, n in summary.counts.items()},
        detail=f"{'重建' if before else '生成'}演示数据：{households} 户客户家庭，随机种子 {seed}",
    )
    session.flush()
    summary.seconds = time.perf_counter() - started
    return summary


def _insert(
    session: Session, generator: _Generator, progress: Callable[[int], None] | None
) -> None:
    # The time stamps come from the database: binding a datetime for every row costs more
    # than inserting the row.
    statements = {
        t.name: insert(t).values(created_at=func.now(), updated_at=func.now()) for t in TABLES
    }
    for rows, done in generator.batches():
        for table in TABLES:
            if rows[table.name]:
                session.execute(statements[table.name], rows[table.name])
        if progress:
            progress(done)


def _clear_previous_demo(session: Session, replace: bool) -> dict[str, int] | None:
    """Pass a fresh database (None), empty a database holding only a demo when asked to
    replace it (returns its rows per table), refuse anything else."""
    counts = table_counts(session)
    if not any(counts.values()):
        return None
    elsewhere = "请用 --db 指定一个新的数据库，例如 crm --db sqlite:///crm-demo.db demo"
    if session.get(Setting, MARKER) is None:
        raise CrmError(
            f"当前数据库中已有不是由 crm demo 生成的客户数据（{_describe(counts)}），"
            f"演示数据不会覆盖它：{elsewhere}。"
        )
    added = _added_since_demo(session, counts)
    if added:
        raise CrmError(
            f"这个演示数据库在生成之后又新增或导入了数据（{_describe(added)}），"
            f"重建会把它们一起删除，所以不会重建：{elsewhere}。"
        )
    if not replace:
        raise CrmError(
            f"当前数据库已有演示数据（{_describe(counts)}）：要删除后重建，"
            f"请由系统管理员加 --replace 运行，或{elsewhere.removeprefix('请')}。"
        )
    if audit.current_user(session).role != "admin":
        raise PermissionDenied(
            "重建演示数据会删除现有的全部演示数据，只有系统管理员可以加 --replace 运行："
            "请以系统管理员身份运行，例如 crm --as 姓名:admin demo --replace。"
        )
    for table in _tables_to_clear(session):
        session.execute(delete(table))
    return counts


# Table -> (what a person calls its rows, the measure word), for the refusals.
ROW_NAMES = {
    "projects": ("楼盘", "个"),
    "buildings": ("楼栋", "栋"),
    "units": ("房号", "套"),
    "households": ("客户家庭", "户"),
    "members": ("家庭成员", "人"),
    "purchases": ("成交", "笔"),
    "referrals": ("老带新", "条"),
    "service_records": ("服务记录", "条"),
}


def _describe(counts: dict[str, int]) -> str:
    return "、".join(
        f"{ROW_NAMES[name][0]} {n:,} {ROW_NAMES[name][1]}" for name, n in counts.items() if n
    )


def _fingerprint(session: Session) -> dict[str, list[int]]:
    """[rows, highest id] per demo table, as the database has them."""
    found = {}
    for table in TABLES:
        rows, top = session.execute(select(func.count(), func.max(table.c.id))).one()
        found[table.name] = [rows or 0, top or 0]
    return found


def _added_since_demo(session: Session, counts: dict[str, int]) -> dict[str, int]:
    """Rows per table added since the demo was built: those above its highest id, or the
    rows beyond its count (an id reused after a delete). A demo built before its rows were
    recorded is compared with the row counts its audit entry holds (service records
    excepted)."""
    stored = session.get(Setting, ROWS)
    if stored is not None:
        left = json.loads(stored.value)
    else:
        entry = session.scalar(
            select(AuditEntry.changes)
            .where(AuditEntry.action == "demo")
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
        # No record of what the demo wrote: everything counts as added. The entry counts
        # what the generator wrote, before the plugins added their tickets' service records.
        left = {name: [after, None] for name, (_before, after) in (entry or {}).items()}
        if entry:
            left["service_records"] = [counts["service_records"], None]
    added = {}
    for table in TABLES:
        rows, top = left.get(table.name, [0, 0])
        above = 0
        if top is not None:
            above = session.scalar(select(func.count()).select_from(table).where(table.c.id > top))
        added[table.name] = max(above or 0, counts[table.name] - rows)
    return {name: n for name, n in added.items() if n > 0}


def _set(session: Session, key: str, value: str) -> None:
    setting = session.get(Setting, key) or Setting(key=key)
    setting.value = value
    session.add(setting)


def _tables_to_clear(session: Session) -> list[Table]:
    """The demo tables plus any table (a plugin's, say) whose rows point into them,
    children first."""
    meta = MetaData()
    meta.reflect(bind=session.connection())
    names = {t.name for t in TABLES}
    grown = True
    while grown:
        grown = False
        for table in meta.tables.values():
            if table.name not in names and any(
                fk.column.table.name in names for fk in table.foreign_keys
            ):
                names.add(table.name)
                grown = True
    return [t for t in reversed(meta.sorted_tables) if t.name in names]


def _advance_sequences(session: Session) -> None:
    # Ids were assigned here, so PostgreSQL's sequences still point at 1.
    for table in TABLES:
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            ),
            {"name": table.name},
        )


@dataclass
class _Project:
    id: int
    spec: ProjectSpec
    launch: dt.date
    buildings: int = 0
    contracts: int = 0
    # Unsold units: (unit id, code, floor area, floor).
    pool: list[tuple[int, str, Decimal, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.completion = self.launch + dt.timedelta(days=BUILD_TIME)
        self.sale_end = self.launch + dt.timedelta(days=SALE_WINDOW)

    def on_sale(self, day: dt.date) -> bool:
        return self.launch <= day < self.sale_end


class _Person(NamedTuple):
    name: str
    role: str
    age: int
    male: bool
    phone: bool = False  # has a mobile phone on record
    id_card: bool = False  # has given an ID number (buyers and registered tenants)


def _pools(seed: int) -> dict[str, list[str]]:
    """Faker is slow per call, so names and jobs are drawn once into pools."""
    from faker import Faker

    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    return {
        "surname": [fake.last_name() for _ in range(5000)],
        "male": [fake.first_name_male() for _ in range(3000)],
        "female": [fake.first_name_female() for _ in range(3000)],
        "job": [j for j in (fake.job() for _ in range(1500)) if j != "其他"],
    }


class _Generator:
    """Draws the portfolio household by household, in the order they first bought or
    enquired, so every referrer is an earlier buyer."""

    def __init__(self, vault: Vault, households: int, seed: int, now: dt.datetime):
        self.vault = vault
        self.total = households
        self.rng = random.Random(seed)
        self.random = self.rng.random
        self.pools = _pools(seed)
        self.now = now
        # The business zone's calendar, as ages and dates are counted (not the machine's).
        self.today = local_today(now)
        self.start = self.today - dt.timedelta(days=max(p.launch_days_ago for p in PROJECTS))
        self.projects = [
            _Project(i, spec, self.today - dt.timedelta(days=spec.launch_days_ago))
            for i, spec in enumerate(PROJECTS, 1)
        ]
        self.ids: Counter[str] = Counter()
        self.first_sale: dict[int, dt.date] = {}
        # Earlier buyers; club members appear twice, so they refer twice as often.
        self.referrers: list[int] = []
        self.stats: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.sample: tuple[str, str, str] | None = None
        self.fallback: tuple[str, str, str] | None = None

    # random.randint, randrange and choice check their arguments on every call; these are
    # called millions of times, so they work straight from random().
    def _int(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def _below(self, n: int) -> int:
        return int(self.random() * n)

    def _one(self, items):
        return items[int(self.random() * len(items))]

    def _next(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def batches(self) -> Iterator[tuple[dict[str, list[dict]], int]]:
        rng = self.rng
        span = (self.today - self.start).days
        plan = []
        for _ in range(self.total):
            if rng.random() < PROSPECTIVE:
                plan.append((span - self._below(720), True))
            else:
                plan.append((self._below(span + 1), False))
        plan.sort(key=lambda item: item[0])
        rows = self._empty()
        rows["projects"] = [
            {"id": p.id, "name": p.spec.name, "city": p.spec.city} for p in self.projects
        ]
        for index, (offset, prospective) in enumerate(plan, 1):
            day = self.start + dt.timedelta(days=offset)
            self._household(rows, index, day, prospective)
            if index % BATCH == 0 or index == self.total:
                yield rows, (index - 1) % BATCH + 1
                rows = self._empty()

    def _empty(self) -> dict[str, list[dict]]:
        return {t.name: [] for t in TABLES}

    # Households and members -------------------------------------------------------------

    def _household(self, rows: dict, hid: int, day: dt.date, prospective: bool) -> None:
        rng = self.rng
        on_sale = [p for p in self.projects if p.on_sale(day)] or self.projects[-1:]
        project = self._one(on_sale)
        male = rng.random() < 0.55
        surname = self._one(self.pools["surname"])
        owner = surname + self._one(self.pools["male" if male else "female"])
        if prospective:
            age = self._int(25, 62)
        else:
            age = self._int(25, 58) + (self.today - day).days // 365
        price = project.spec.price
        tier = TIER_PROSPECT(rng) if prospective else TIER_BUYER(rng)
        clubs = rng.sample(CLUBS, self._one((0, 0, 0, 1, 1, 2)) if not prospective else 0)
        code = f"H{hid:06d}"
        name = owner + "家" if rng.random() < 0.7 else owner
        rows["households"].append(
            {
                "id": hid,
                "code": code,
                "name": name,
                "status": "prospective" if prospective else "existing",
                "project_id": project.id,
                "age": age,
                "income_band": INCOME[
                    "high" if price >= 40000 else "mid" if price >= 20000 else "low"
                ](rng),
                "housing": (HOUSING_PROSPECT if prospective else HOUSING_BUYER)(rng),
                "education": EDUCATION(rng),
                "occupation": self._one(self.pools["job"]),
                "club_activities": "、".join(clubs) or None,
                "member_tier": tier,
                "consent_contact": rng.random() < 0.95,
                "consent_marketing": rng.random() < (0.7 if tier != "none" else 0.35),
                "note": None,
            }
        )
        if prospective:
            self.stats["prospective"] += 1
            people = [_Person(owner, "owner", age, male, phone=True)]
            if rng.random() < 0.3:
                partner_age = age + self._int(-4, 4)
                phone = rng.random() < 0.5
                people.append(_Person(self._name(not male), "family", partner_age, not male, phone))
            self._members(rows, hid, project, people)
            return
        complaints = self.kinds["complaint"]
        purchases = self._purchases(rows, hid, project, day, tier)
        people = [_Person(owner, "owner", age, male, phone=True, id_card=True)]
        if rng.random() < 0.6:
            spouse_age = max(22, age + self._int(-5, 4))
            people.append(
                _Person(self._name(not male), "co_owner", spouse_age, not male, True, True)
            )
        if age >= 30 and rng.random() < 0.5:
            child_age = age - self._int(24, 36)
            if child_age >= 0:
                boy = rng.random() < 0.5
                child = surname + self._one(self.pools["male" if boy else "female"])
                phone = child_age >= 16 and rng.random() < 0.7
                people.append(_Person(child, "family", child_age, boy, phone, id_card=True))
        if rng.random() < 0.12 and age <= 62:
            father = rng.random() < 0.5
            parent_age = age + self._int(24, 32)
            phone = rng.random() < 0.7
            people.append(_Person(self._name(father), "family", parent_age, father, phone, True))
        if rng.random() < (0.5 if len(purchases) > 1 else 0.05):
            man = rng.random() < 0.5
            tenant_age = self._int(22, 50)
            registered = rng.random() < 0.6
            people.append(_Person(self._name(man), "tenant", tenant_age, man, True, registered))
        self._members(rows, hid, project, people)
        # The "try next" household: a repeat buyer with a complaint shows the most on its card.
        if len(purchases) > 1 and self.sample is None and self.kinds["complaint"] > complaints:
            self.sample = (code, owner, project.spec.name)
        if self.fallback is None:
            self.fallback = (code, owner, project.spec.name)

    def _name(self, male: bool) -> str:
        return self._one(self.pools["surname"]) + self._one(
            self.pools["male" if male else "female"]
        )

    def _members(self, rows: dict, hid: int, project: _Project, people: list[_Person]) -> None:
        rng = self.rng
        seen: set[str] = set()
        for person in people:
            if person.name in seen:  # two people of one household may not share a name
                continue
            seen.add(person.name)
            phone = self._phone() if person.phone else None
            alt = self._phone() if person.phone and rng.random() < 0.2 else None
            id_number = (
                self._id_number(project, person.age, person.male) if person.id_card else None
            )
            rows["members"].append(
                {
                    "id": self._next("members"),
                    "household_id": hid,
                    "name": person.name,
                    "role": person.role,
                    **seal_member_fields(
                        self.vault, phone=phone, alt_phone=alt, id_number=id_number
                    ),
                }
            )

    def _phone(self) -> str:
        return self._one(MOBILE_PREFIXES) + f"{self._below(10**8):08d}"

    def _id_number(self, project: _Project, age: int, male: bool) -> str:
        """An 18-digit resident ID whose birth date makes the person `age` today."""
        rng = self.rng
        local = rng.random() < 0.6
        region = self._one(project.spec.districts if local else OTHER_DISTRICTS)
        latest = add_months(self.today, -12 * age)
        earliest = add_months(self.today, -12 * (age + 1)) + dt.timedelta(days=1)
        birth = earliest + dt.timedelta(days=self._below((latest - earliest).days + 1))
        sequence = f"{self._below(100):02d}{self._one('13579' if male else '02468')}"
        first17 = f"{region}{birth:%Y%m%d}{sequence}"
        return first17 + id_check_digit(first17)

    # Purchases, referrals and units -----------------------------------------------------

    def _purchases(
        self, rows: dict, hid: int, project: _Project, day: dt.date, tier: str
    ) -> list[int]:
        rng = self.rng
        member = tier != "none"
        purchase_ids = [self._sale(rows, hid, project, day, first=True)]
        self.stats["buyers"] += 1
        low, high = REPEAT_GAP
        eligible = (self.today - day).days >= low
        if eligible and rng.random() < (REPEAT_MEMBER if member else REPEAT_OTHER):
            later = day
            for _ in range(2):
                room = (self.today - later).days
                if room < low:
                    break
                later = later + dt.timedelta(days=self._int(low, min(high, room)))
                on_sale = [p for p in self.projects if p.on_sale(later)]
                if not on_sale:
                    break
                purchase_ids.append(self._sale(rows, hid, self._one(on_sale), later, first=False))
                if rng.random() >= THIRD:
                    break
        if eligible and member:
            self.stats["member_eligible"] += 1
        if len(purchase_ids) > 1:
            self.stats["repeat_buyers"] += 1
            self.stats["member_repeat_buyers"] += member
        self.first_sale[hid] = day
        self.referrers.extend((hid, hid) if member else (hid,))
        return purchase_ids

    def _sale(self, rows: dict, hid: int, project: _Project, day: dt.date, first: bool) -> int:
        rng = self.rng
        pid = self._next("purchases")
        referrer = None
        if first and self.referrers and rng.random() < REFERRAL:
            referrer = self._one(self.referrers)
            referred_on = max(day - dt.timedelta(days=self._int(7, 90)), self.first_sale[referrer])
            rows["referrals"].append(
                {
                    "id": self._next("referrals"),
                    "referrer_household_id": referrer,
                    "referred_household_id": hid,
                    "purchase_id": pid,
                    "referred_on": referred_on,
                }
            )
            self.stats["referral_sales"] += 1
        channel = "referral" if referrer else SALE_CHANNEL(rng)
        unit_id, unit_code, area, floor = self._unit(rows, project)
        years = (day - project.launch).days / 365
        price = project.spec.price * (1 + 0.035 * years) * (1 + 0.004 * min(floor, 30))
        amount = round(float(area) * price * rng.uniform(0.94, 1.0), -2)
        if day < project.completion:  # off-plan
            handover = day + dt.timedelta(days=self._int(365, 913))
        else:
            handover = day + dt.timedelta(days=self._int(30, 90))
        project.contracts += 1
        rows["purchases"].append(
            {
                "id": pid,
                "contract_no": f"{project.spec.abbr}-{day.year}-{project.contracts:05d}",
                "household_id": hid,
                "unit_id": unit_id,
                "purchase_date": day,
                "floor_area": area,
                "amount": Decimal(f"{amount:.2f}"),
                "channel": channel,
                "referrer_household_id": referrer,
                "promotions_attended": self._int(1, 6) if channel == "event" else self._int(0, 3),
                "handover_date": handover if handover <= self.today else None,
            }
        )
        if handover <= self.today:
            self._service(rows, hid, unit_id, unit_code, handover)
        return pid

    def _unit(self, rows: dict, project: _Project) -> tuple[int, str, Decimal, int]:
        """Sell a random unsold unit; open a new building when few are left, so each project
        keeps some unsold stock."""
        if len(project.pool) < 24:
            self._building(rows, project)
        pool = project.pool
        index = self._below(len(pool))
        pool[index], pool[-1] = pool[-1], pool[index]
        return pool.pop()

    def _building(self, rows: dict, project: _Project) -> None:
        rng = self.rng
        project.buildings += 1
        style = project.spec.style
        bid = self._next("buildings")
        suffix = "号楼" if style == "stair" else "栋"
        rows["buildings"].append(
            {
                "id": bid,
                "project_id": project.id,
                "name": f"{project.buildings}{suffix}",
            }
        )
        if style == "tower":
            floors = range(2, self._int(18, 33) + 1)
            positions = [f"{n:02d}" for n in range(1, 5)]
        elif style == "stair":
            floors = range(1, self._int(11, 26) + 1)
            positions = [f"-{s}{letter}" for s in (1, 2) for letter in "AB"]
        else:
            floors = range(1, self._int(3, 6) + 1)
            positions = [f"{z}-{s}{letter}" for z in "AB" for s in (1, 2, 3) for letter in "ABC"]
        areas = project.spec.areas
        shapes = [areas[i % len(areas)] * rng.uniform(0.98, 1.03) for i in range(len(positions))]
        for floor in floors:
            for position, area in zip(positions, shapes):
                uid = self._next("units")
                code = f"{floor}{position}"
                floor_area = Decimal(f"{area:.2f}")
                rows["units"].append(
                    {
                        "id": uid,
                        "building_id": bid,
                        "code": code,
                        "floor_area": floor_area,
                    }
                )
                project.pool.append((uid, code, floor_area, floor))

    # Service records --------------------------------------------------------------------

    def _service(self, rows: dict, hid: int, unit_id: int, unit: str, handover: dt.date) -> None:
        rng = self.rng
        lived = (self.today - handover).days

        def record(kind: str, after_days: int, topic: str | None = None) -> None:
            day = handover + dt.timedelta(days=after_days)
            self._record(rows, hid, unit_id, unit, kind, day, topic)

        record("move_in", 0)
        if rng.random() < 0.9:
            record("title_certificate", self._int(60, 400))
        for year in range(min(lived // 365 + 1, 6)):
            if rng.random() < 0.25:
                record("repair", year * 365 + self._below(365))
        for kind, once, twice in (
            ("complaint", 0.25, 0.2),
            ("property_service", 0.45, 0.33),
            ("suggestion", 0.12, 0.0),
        ):
            if rng.random() < once:
                for _ in range(2 if rng.random() < twice else 1):
                    record(kind, self._below(lived + 1))
        if rng.random() < 0.25:
            record("visit", self._int(30, 330), "care_visit")
        for appointment in range(1, lived // 1461 + 1):  # every four years (四年之约)
            if rng.random() < 0.85:
                record("visit", 1461 * appointment, "four_year_visit")

    def _record(
        self,
        rows: dict,
        hid: int,
        unit_id: int,
        unit: str,
        kind: str,
        day: dt.date,
        topic: str | None = None,
    ) -> None:
        """One service record on `day`; `topic` picks the summaries (default: the kind's)."""
        rng = self.rng
        if day > self.today:
            return
        # Every draw is made before any decision, so the stream (and all data after it) does
        # not depend on the time of day the demo runs.
        hour, minute = self._int(8, 20), self._below(60)
        low, high = CLOSE_MINUTES[kind]
        if rng.random() < 0.15 and kind == "complaint":  # a major one takes days
            low, high = 1440, 14400
        minutes = self._int(low, high)
        left_open = rng.random() < 0.25
        channel = SERVICE_CHANNEL[kind](rng)
        summary = self._one(SUMMARIES[topic or kind]).format(unit=unit)
        result = self._one(RESULTS[kind])
        opened = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=local_zone())
        if opened > self.now:
            return
        closed = opened + dt.timedelta(minutes=minutes)
        still_open = closed > self.now or (left_open and self.now - opened < dt.timedelta(days=60))
        rid = self._next("service_records")
        self.kinds[kind] += 1
        self.stats["open"] += still_open
        rows["service_records"].append(
            {
                "id": rid,
                "record_no": f"{RECORD_PREFIX[kind]}{day.year}{rid:07d}",
                "household_id": hid,
                "unit_id": unit_id,
                "kind": kind,
                "channel": channel,
                "status": "open" if still_open else "closed",
                "opened_at": opened,
                "closed_at": None if still_open else closed,
                "summary": summary,
                "result": None if still_open else result,
            }
        )

    def summary(self, rebuilt: bool) -> DemoSummary:
        counts = {t.name: self.ids[t.name] for t in TABLES}
        counts.update(projects=len(self.projects), households=self.total)
        code, name, project = self.sample or self.fallback or ("", "", PROJECTS[0].name)
        return DemoSummary(
            counts=counts,
            prospective=self.stats["prospective"],
            buyers=self.stats["buyers"],
            referral_sales=self.stats["referral_sales"],
            repeat_buyers=self.stats["repeat_buyers"],
            member_repeat_buyers=self.stats["member_repeat_buyers"],
            member_buyers_eligible=self.stats["member_eligible"],
            service_by_kind=dict(self.kinds),
            open_records=self.stats["open"],
            cities=list(dict.fromkeys(p.spec.city for p in self.projects)),
            sample_code=code,
            sample_name=name,
            sample_project=project,
            rebuilt=rebuilt,
        )


def table_counts(session: Session) -> dict[str, int]:
    """Rows per demo table, as the database has them."""
    return {t.name: session.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES}
