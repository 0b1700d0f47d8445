"""Households: the tracking card, list and search by each key, add/update with audit entries,
validation and permission refusals."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.core.card import build_card
from crm.core.db import transaction
from crm.core.errors import CrmError, NotFound, PermissionDenied
from crm.core.households import add_household, search_households, update_household
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
)
from crm.core.privacy import seal_member_fields
from crm.core.security import User
from crm.plugins.analysis.card import months_between
from crm.plugins.service.card import year_before

ZHANG_ID = "11010519800101123" + id_check_digit("11010519800101123")
LI_ID = "31010419900215456" + id_check_digit("31010419900215456")
# The card counts months and days back from today, so every test here runs with the clock at
# NOW (10:00 on 2026-12-02 in Shanghai) and the seeded dates count back from it.
NOW = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)
TWO_YEARS_AGO = dt.date(2024, 12, 2)
pytestmark = pytest.mark.time_machine(NOW)


@pytest.fixture
def seeded(app):
    """Two projects; 张伟家 (H001) bought twice and referred 李娜家 (H002); service records."""
    with app.session() as session, transaction(session):
        vault = session.info["vault"]
        garden = Project(name="万科城市花园", city="深圳")
        park = Project(name="四季花城", city="深圳")
        b1 = Building(project=garden, name="3栋")
        b2 = Building(project=park, name="1栋")
        u1 = Unit(building=b1, code="12-1A", floor_area=Decimal("98.50"))
        u2 = Unit(building=b2, code="1903", floor_area=Decimal("120.00"))
        u3 = Unit(building=b1, code="2A-1B", floor_area=Decimal("88.00"))
        zhang = Household(
            code="H001",
            name="张伟家",
            status="existing",
            project=garden,
            age=45,
            income_band="300k_500k",
            education="bachelor",
            member_tier="gold",
        )
        li = Household(code="H002", name="李娜家", status="existing", project=park)
        wang = Household(code="H003", name="王芳家", status="prospective", project=park)
        zhang.members += [
            Member(
                name="张伟",
                role="owner",
                **seal_member_fields(vault, phone="13812345678", id_number=ZHANG_ID),
            ),
            Member(
                name="刘敏",
                role="co_owner",
                **seal_member_fields(vault, phone="13700002222", alt_phone="13655556666"),
            ),
        ]
        li.members.append(
            Member(
                name="李娜", role="owner", **seal_member_fields(vault, "13900001234", None, LI_ID)
            )
        )
        session.add_all([zhang, li, wang])
        session.flush()
        first = Purchase(
            contract_no="C-001",
            household=zhang,
            unit=u1,
            purchase_date=dt.date(2015, 5, 20),
            floor_area=Decimal("98.50"),
            amount=Decimal("1500000.00"),
            channel="walk_in",
            promotions_attended=2,
            handover_date=dt.date(2016, 6, 1),
        )
        second = Purchase(
            contract_no="C-002",
            household=zhang,
            unit=u2,
            purchase_date=TWO_YEARS_AGO,
            amount=Decimal("2600000.00"),
            channel="event",
        )
        referred = Purchase(
            contract_no="C-003",
            household=li,
            unit=u3,
            purchase_date=TWO_YEARS_AGO,
            amount=Decimal("1800000.00"),
            channel="referral",
            referrer_household_id=zhang.id,
        )
        session.add_all([first, second, referred])
        session.flush()
        session.add(
            Referral(
                referrer_household_id=zhang.id,
                referred_household_id=li.id,
                purchase_id=referred.id,
                referred_on=TWO_YEARS_AGO,
            )
        )

        def record(no, kind, status, opened_days, closed_days=None, unit=None):
            return ServiceRecord(
                record_no=no,
                household=zhang,
                unit=unit,
                kind=kind,
                channel="phone",
                status=status,
                opened_at=NOW - dt.timedelta(days=opened_days),
                closed_at=None if closed_days is None else NOW - dt.timedelta(days=closed_days),
                summary=f"{kind} 摘要",
                result="已处理" if status == "closed" else None,
            )

        session.add_all(
            [
                record("S-001", "complaint", "open", 30, unit=u1),
                record("S-002", "repair", "open", 10, unit=u1),
                record("S-003", "complaint", "closed", 400, 390),
                record("S-004", "visit", "closed", 5, 2),
            ]
        )
    return app


def _section(card, title):
    return next(section for section in card.sections if section.title == title)


def test_card_has_every_section_including_plugin_sections(seeded):
    with seeded.session() as session:
        card = build_card(session, "H001")
    titles = [section.title for section in card.sections]
    assert titles == [
        "基本资料",
        "家庭成员",
        "房产",
        "购买记录",
        "推荐他人（老带新）",
        "被推荐",
        "处理中的服务记录",
        "历史服务记录",
        "购买与推荐概况",
        "服务概况",
    ]
    profile = dict(_section(card, "基本资料").lines)
    assert profile["客户状态"] == "业主" and profile["家庭年收入"] == "30-50万"
    assert profile["教育程度"] == "本科" and profile["会员等级"] == "金卡"
    assert profile["所属项目"] == "万科城市花园"
    members = _section(card, "家庭成员").rows
    assert [(m["姓名"], m["身份"]) for m in members] == [("张伟", "业主"), ("刘敏", "共有人")]
    units = _section(card, "房产").rows
    assert [(u["项目"], u["楼栋"], u["房号"]) for u in units] == [
        ("万科城市花园", "3栋", "12-1A"),
        ("四季花城", "1栋", "1903"),
    ]
    purchases = _section(card, "购买记录").rows
    assert [p["合同号"] for p in purchases] == ["C-001", "C-002"]
    assert purchases[0]["渠道"] == "自然到访" and purchases[0]["金额(元)"] == Decimal(1500000)
    made = _section(card, "推荐他人（老带新）").rows
    # The referral register and the purchase's referrer name the same pair: shown once.
    assert [(r["客户编号"], r["成交合同号"]) for r in made] == [("H002", "C-003")]
    assert _section(card, "被推荐").rows == []
    open_records = _section(card, "处理中的服务记录").rows
    assert [(r["登记号"], r["类别"], r["房号"]) for r in open_records] == [
        ("S-001", "投诉", "12-1A"),
        ("S-002", "维修", "12-1A"),
    ]
    assert [r["登记号"] for r in _section(card, "历史服务记录").rows] == ["S-004", "S-003"]

    overview = dict(_section(card, "购买与推荐概况").lines)
    assert overview["购买次数"] == 2
    assert overview["购买总额(元)"] == Decimal(4100000)
    assert overview["首次购买日期"] == dt.date(2015, 5, 20)
    assert overview["最近购买日期"] == TWO_YEARS_AGO
    assert overview["距最近购买(月)"] == 24
    assert overview["推荐成交户数"] == 1
    assert overview["被推荐客户成交总额(元)"] == Decimal(1800000)

    service = dict(_section(card, "服务概况").lines)
    assert service["处理中的记录"] == "投诉 1，维修 1"
    assert service["处理中合计"] == 2
    assert service["近 12 个月投诉"] == 1
    assert service["距最近联系(天)"] == 2


# 17:00 UTC on 31 January is 1 February in Shanghai: two whole years since 1 February 2025.
@pytest.mark.time_machine(dt.datetime(2027, 1, 31, 17, 0, tzinfo=dt.UTC))
def test_months_since_the_last_purchase_count_on_the_business_calendar(session):
    from crm.plugins.analysis.card import purchase_overview

    household = Household(code="H9", name="王家", status="existing")
    session.add(household)
    session.flush()
    session.add(
        Purchase(
            contract_no="C-9",
            household_id=household.id,
            purchase_date=dt.date(2025, 2, 1),
            amount=Decimal(1000000),
        )
    )
    session.flush()
    assert dict(purchase_overview(session, household).lines)["距最近购买(月)"] == 24


def test_referred_household_sees_who_referred_it(seeded):
    with seeded.session() as session:
        card = build_card(session, "H002")
    received = _section(card, "被推荐").rows
    assert [(r["客户编号"], r["客户名称"], r["成交合同号"]) for r in received] == [
        ("H001", "张伟家", "C-003")
    ]
    purchases = _section(card, "购买记录").rows
    assert purchases[0]["推荐人"] == "H001 张伟家"
    assert dict(_section(card, "服务概况").lines)["处理中的记录"] == "无"


def test_referral_known_only_from_the_purchase_counts(seeded):
    with seeded.session() as session, transaction(session):
        session.execute(Referral.__table__.delete())
    with seeded.session() as session:
        card = build_card(session, "H001")
    assert [r["客户编号"] for r in _section(card, "推荐他人（老带新）").rows] == ["H002"]
    assert dict(_section(card, "购买与推荐概况").lines)["推荐成交户数"] == 1


def test_plugin_helpers_count_calendar_months_and_years():
    assert months_between(dt.date(2024, 1, 31), dt.date(2024, 2, 29)) == 0
    assert months_between(dt.date(2024, 1, 15), dt.date(2025, 1, 15)) == 12
    leap = dt.datetime(2024, 2, 29, 8, tzinfo=dt.UTC)
    assert year_before(leap) == dt.datetime(2023, 2, 28, 8, tzinfo=dt.UTC)


def test_show_prints_the_card_and_json(seeded, run):
    table = run("household", "show", "H001")
    assert table.exit_code == 0, table.output
    for title in ("【基本资料】", "【家庭成员】", "【购买与推荐概况】", "【服务概况】"):
        assert title in table.output
    assert "客户资料跟踪卡  H001  张伟家" in table.output
    as_json = run("household", "show", "H001", "--format", "json")
    card = json.loads(as_json.output)
    assert card["code"] == "H001"
    assert card["sections"][0]["lines"]["客户状态"] == "业主"
    overview = next(s for s in card["sections"] if s["title"] == "购买与推荐概况")
    assert overview["lines"]["购买次数"] == 2


def test_show_unknown_code_suggests_search(seeded, run):
    result = run("household", "show", "H999")
    assert result.exit_code == NotFound.exit_code
    assert "crm household search" in result.output
    assert "Traceback" not in result.output


def _codes(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [row["code"] for row in json.loads(result.stdout)]


def test_list_filters_and_pages(seeded, run):
    assert _codes(run("household", "list", "--format", "json")) == ["H001", "H002", "H003"]
    assert _codes(run("household", "list", "--project", "四季花城", "--format", "json")) == [
        "H002",
        "H003",
    ]
    assert _codes(run("household", "list", "--status", "准客户", "--format", "json")) == ["H003"]
    assert _codes(run("household", "list", "--status", "existing", "--format", "json")) == [
        "H001",
        "H002",
    ]
    assert _codes(run("household", "list", "--tier", "金卡", "--format", "json")) == ["H001"]
    paged = run("household", "list", "--limit", "1", "--offset", "1", "--format", "json")
    assert _codes(paged) == ["H002"]
    # JSON and CSV keep stdout for the data; a part of the list says so on stderr.
    assert (
        paged.stderr
        == "显示 2–2 条，共 3 条；其余请加 --offset 2（每页 1 条，可用 --limit 调整）。\n"
    )
    csv = run("household", "list", "--format", "csv")
    assert csv.stderr == ""
    assert csv.stdout.splitlines()[1] == (
        "H001,张伟家,业主,万科城市花园,金卡,张伟,万科城市花园/3栋/12-1A、四季花城/1栋/1903"
    )
    # A table says how much of the list it shows, under it.
    table = run("household", "list", "--limit", "2")
    assert table.stdout.splitlines()[-1] == (
        "显示 1–2 条，共 3 条；其余请加 --offset 2（每页 2 条，可用 --limit 调整）。"
    )
    assert run("household", "list").stdout.splitlines()[-1] == "共 3 条，已全部显示。"
    past = run("household", "list", "--offset", "5")
    assert past.stdout.splitlines() == [
        "（无记录）",
        "第 6 条起没有记录，共 3 条：请用更小的 --offset。",
    ]
    unknown = run("household", "list", "--project", "不存在")
    assert unknown.exit_code == NotFound.exit_code and "万科城市花园" in unknown.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--name", "张"], ["H001"]),
        (["--name", "刘敏"], ["H001"]),  # a member's name finds the household
        (["--phone", "138 1234 5678"], ["H001"]),
        (["--phone", "1234"], ["H002"]),
        (["--id-number", LI_ID.lower()], ["H002"]),
        (["--unit", "1903"], ["H001"]),
        (["--unit", "2a-1b"], ["H002"]),
        (["--project", "花城"], ["H001", "H002", "H003"]),  # H001 bought 1903 in 四季花城
        (["--project", "花城", "--name", "王"], ["H003"]),
        (["张伟"], ["H001"]),
        (["+86 139-0000-1234"], ["H002"]),
        (["5678"], ["H001"]),  # 尾号
        (["1903"], ["H001"]),  # the same shape as a tail: a flat
        ([ZHANG_ID], ["H001"]),
        (["12-1A"], ["H001"]),
        (["城市花园"], ["H001", "H002"]),  # H002 bought 2A-1B there
        (["13600000000"], []),
        (["13655556666"], ["H001"]),  # a member's second phone
        (["6666"], ["H001"]),  # … and its tail
        (["--phone", "6666"], ["H001"]),
        # A unit as `ticket show` and the card print it, and shorter forms of it.
        (["四季花城/1栋/1903"], ["H001"]),
        (["四季花城／1栋／1903"], ["H001"]),  # full-width slashes
        (["万科城市花园/3栋/2a-1b"], ["H002"]),
        (["四季花城/3栋/1903"], []),
        (["1栋/1903"], ["H001"]),
        (["1栋1903"], ["H001"]),
        (["四季花城1栋1903"], ["H001"]),
        (["--unit", "四季花城/1栋/1903"], ["H001"]),
        # A building: every household with a unit there.
        (["万科城市花园/3栋"], ["H001", "H002"]),
        (["3栋"], ["H001", "H002"]),
        (["--building", "四季花城/1栋"], ["H001"]),
        (["--building", "3栋", "--name", "李"], ["H002"]),
    ],
)
def test_search_by_each_key(seeded, run, args, expected):
    assert _codes(run("household", "search", *args, "--format", "json")) == expected


def test_search_refuses_bad_input(seeded, run):
    empty = run("household", "search")
    assert empty.exit_code == 1 and "请给出要查找的内容" in empty.output
    phone = run("household", "search", "--phone", "12345")
    assert phone.exit_code == 1 and "尾号" in phone.output
    wrong_id = run("household", "search", ZHANG_ID[:-1] + ("0" if ZHANG_ID[-1] != "0" else "1"))
    assert wrong_id.exit_code == 1 and "校验位" in wrong_id.output
    place = run("household", "search", "四季花城/1栋/19/03")
    assert place.exit_code == 1 and "项目/楼栋/房号" in place.output
    building = run("household", "search", "--building", "a/b/c")
    assert building.exit_code == 1 and "项目/楼栋" in building.output


def test_search_results_show_project_building_and_unit(seeded, run):
    found = run("household", "search", "1903")
    assert found.exit_code == 0, found.output
    header, _, row, footer = found.stdout.splitlines()
    assert "房产（项目/楼栋/房号）" in header
    assert row.split()[-1] == "万科城市花园/3栋/12-1A、四季花城/1栋/1903"
    assert footer == "共 1 条，已全部显示。"
    [listed] = json.loads(run("household", "search", "李娜", "--format", "json").stdout)
    assert listed["units"] == ["万科城市花园/3栋/2A-1B"]


def test_a_search_by_personal_data_is_audited_and_limited_for_masked_roles(seeded, run):
    with seeded.session() as session, transaction(session):
        session.add(Setting(key="privacy.search_limit_per_hour", value="3"))
    # Turning a masked 138****5678 back into the number takes many tail searches: a salesperson
    # gets three an hour, then a refusal that managers see in the audit log.
    for tail in ("5678", "1234", "2222"):
        found = run("household", "search", "--phone", tail, as_="小王:sales")
        assert found.exit_code == 0, found.output
    refused = run("household", "search", "--phone", "0000", as_="小王:sales")
    assert refused.exit_code == 1 and "已达上限（3 次）" in refused.output
    assert run("household", "search", "--name", "张", as_="小王:sales").exit_code == 0
    # Another user has an allowance of their own; a manager (who sees numbers in full) has none
    # to exhaust, but is audited just the same.
    assert run("household", "search", "5678", as_="小李:sales").exit_code == 0
    for _ in range(4):
        assert run("household", "search", ZHANG_ID, as_="王经理:manager").exit_code == 0
    with seeded.session() as session:
        searches = _audit(session, "members", "search_personal")
        alerts = _audit(session, "members", "search_limit")
    by_actor = [(entry.actor, entry.detail) for entry in searches]
    assert by_actor[:4] == [
        ("小王", "按手机尾号 5678查找"),
        ("小王", "按手机尾号 1234查找"),
        ("小王", "按手机尾号 2222查找"),
        ("小李", "按手机尾号 5678查找"),
    ]
    assert [actor for actor, _ in by_actor[4:]] == ["王经理"] * 4
    assert ZHANG_ID not in " ".join(detail for _, detail in by_actor)  # masked on record
    assert [(entry.actor, entry.role) for entry in alerts] == [("小王", "sales")]
    assert "手机尾号 0000" in alerts[0].detail
    listed = run("audit", "list", "--action", "search_limit", as_="王经理:manager")
    assert listed.exit_code == 0 and "小王" in listed.output
    # The managers' check: who hit the limit, how often, and what was refused last.
    alerts_shown = run("audit", "alerts", "--format", "json", as_="王经理:manager")
    assert alerts_shown.exit_code == 0, alerts_shown.output
    [alert] = json.loads(alerts_shown.output)
    assert (alert["actor"], alert["role"], alert["refusals"]) == ("小王", "销售", 1)
    assert "手机尾号 0000" in alert["detail"]
    assert run("audit", "alerts", as_="小王:sales").exit_code != 0


def test_the_search_limit_is_a_setting_managers_change(seeded, run):
    assert "上限：30 次" in run("audit", "search-limit", as_="小王:sales").output
    refused = run("audit", "search-limit", "1000", as_="小王:sales")
    assert refused.exit_code != 0 and "无权" in refused.output
    bad = run("audit", "search-limit", "0", as_="王经理:manager")
    assert bad.exit_code != 0 and "应为 1 到" in bad.output
    changed = run("audit", "search-limit", "5", as_="王经理:manager")
    assert changed.exit_code == 0 and "默认 30 → 5" in changed.output, changed.output
    assert "上限：5 次" in run("audit", "search-limit", as_="小王:sales").output
    with seeded.session() as session:
        [entry] = _audit(session, "settings", "update")
    assert (entry.actor, entry.changes) == ("王经理", {"value": [None, "5"]})


def test_a_bad_search_limit_setting_is_one_sentence(seeded, run):
    with seeded.session() as session, transaction(session):
        session.add(Setting(key="privacy.search_limit_per_hour", value="many"))
    result = run("household", "search", "5678", as_="小王:sales")
    assert result.exit_code == 1 and "privacy.search_limit_per_hour" in result.output


def test_search_treats_like_wildcards_literally(seeded):
    with seeded.session() as session:
        assert search_households(session, name="%") == []


def _audit(session, entity: str, action: str) -> list[AuditEntry]:
    return session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == entity, AuditEntry.action == action)
        .order_by(AuditEntry.id)
    ).all()


def test_add_with_owner_is_audited_and_sealed(app, run):
    result = run(
        "household",
        "add",
        "H100",
        "--name",
        "赵磊家",
        "--status",
        "业主",
        "--project",
        "金色家园",
        "--age",
        "52",
        "--education",
        "研究生",
        "--no-consent-contact",
        "--owner-name",
        "赵磊",
        "--phone",
        "１３８-0000-9999",
        "--id-number",
        ZHANG_ID,
        as_="李销售:sales",
    )
    assert result.exit_code == 0, result.output
    with app.session() as session:
        household = session.scalar(select(Household).where(Household.code == "H100"))
        assert (household.status, household.education, household.age) == (
            "existing",
            "postgraduate",
            52,
        )
        assert household.consent_contact is False and household.project.name == "金色家园"
        owner = household.members[0]
        assert (owner.name, owner.role, owner.phone_tail) == ("赵磊", "owner", "9999")
        vault = session.info["vault"]
        assert vault.decrypt(owner.phone_enc) == "13800009999"
        assert owner.id_number_hash == vault.lookup_hash(ZHANG_ID)
        created = _audit(session, "households", "create")[0]
        assert created.actor == "李销售" and created.role == "sales"
        assert created.changes["code"] == [None, "H100"]
        member_entry = _audit(session, "members", "create")[0]
        assert member_entry.changes["phone_enc"][0] == "***"
        assert "13800009999" not in json.dumps(member_entry.changes)


def _state(session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Household)),
        session.scalar(select(func.count()).select_from(AuditEntry)),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "赵磊家", "--age", "abc"], "年龄：“abc”不是整数"),
        (["--name", "赵磊家", "--age", "200"], "年龄：应在 0 到 120 之间"),
        (
            ["--name", "赵磊家", "--status", "老客户"],
            "客户状态：不认识的取值“老客户”；可用：准客户",
        ),
        (["--name", "  "], "客户名称：不能为空"),
        (["--name", "赵磊家", "--owner-name", "赵磊", "--phone", "12345"], "手机号：不是有效"),
        (["--name", "赵磊家", "--owner-name", "赵磊", "--id-number", "123"], "身份证号应为 18 位"),
        (["--name", "赵磊家", "--phone", "13800009999"], "--owner-name"),
    ],
)
def test_add_refuses_bad_input_and_writes_nothing(app, run, args, message):
    with app.session() as session:
        before = _state(session)
    result = run("household", "add", "H100", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.startswith("错误：") and result.output.count("\n") == 1
    with app.session() as session:
        assert _state(session) == before


def test_add_refuses_a_taken_code(seeded, run):
    result = run("household", "add", "H001", "--name", "另一家")
    assert result.exit_code == 1 and "已存在" in result.output


def test_update_changes_only_given_fields_with_old_and_new(seeded, run):
    result = run(
        "household",
        "update",
        "H002",
        "--age",
        "41",
        "--member-tier",
        "银卡",
        "--occupation",
        "教师",
        as_="陈客服:agent",
    )
    assert result.exit_code == 0, result.output
    assert "年龄" in result.output and "会员等级" in result.output
    with seeded.session() as session:
        household = session.scalar(select(Household).where(Household.code == "H002"))
        assert (household.age, household.member_tier, household.occupation) == (
            41,
            "silver",
            "教师",
        )
        assert household.status == "existing" and household.project.name == "四季花城"
        entry = _audit(session, "households", "update")[-1]
        assert entry.changes == {
            "age": [None, 41],
            "member_tier": ["none", "silver"],
            "occupation": [None, "教师"],
        }
        assert (entry.actor, entry.role) == ("陈客服", "agent")
    again = run("household", "update", "H002", "--age", "41")
    assert "未作修改" in again.output


def test_update_can_clear_a_field_and_move_project(seeded):
    with seeded.session() as session, transaction(session):
        changed = update_household(session, "H001", {"education": "", "project": "四季花城"})
    assert changed == ["所属项目", "教育程度"]
    with seeded.session() as session:
        entry = _audit(session, "households", "update")[-1]
        assert entry.changes["education"] == ["bachelor", None]
        assert entry.changes["project_id"][0] != entry.changes["project_id"][1]


def test_update_refusals(seeded, run):
    denied = run("household", "update", "H001", "--age", "50", as_="赵分析:analyst")
    assert denied.exit_code == PermissionDenied.exit_code
    assert "分析员" in denied.output
    nothing = run("household", "update", "H001")
    assert nothing.exit_code == 1 and "没有给出要修改的字段" in nothing.output
    missing = run("household", "update", "H404", "--age", "50")
    assert missing.exit_code == NotFound.exit_code
    bad = run("household", "update", "H001", "--housing", "城堡")
    assert bad.exit_code == 1 and "住房情况：不认识的取值“城堡”" in bad.output
    with seeded.session() as session:
        assert session.scalar(select(Household.age).where(Household.code == "H001")) == 45
        assert _audit(session, "households", "update") == []


def test_permission_is_checked_in_the_library(seeded):
    with seeded.session() as session:
        session.info["user"] = User("赵分析", "analyst")
        with pytest.raises(PermissionDenied):
            add_household(session, {"code": "H200", "name": "某家"})
        with pytest.raises(PermissionDenied):
            update_household(session, "H001", {"age": 50})


def test_member_add_and_duplicate(seeded, run):
    result = run(
        "household",
        "member",
        "add",
        "H003",
        "--name",
        "王芳",
        "--role",
        "户主",
        "--alt-phone",
        "010 1234 5678",
    )
    assert result.exit_code == 0, result.output
    with seeded.session() as session:
        member = session.scalar(select(Member).where(Member.name == "王芳"))
        assert member.role == "owner"
        assert session.info["vault"].decrypt(member.alt_phone_enc) == "010-12345678"
        assert _audit(session, "members", "create")[-1].changes["name"] == [None, "王芳"]
    # The mobile column takes mobiles only, as in a members import.
    landline = run(
        "household", "member", "add", "H003", "--name", "王林", "--phone", "010 1234 5678"
    )
    assert landline.exit_code == 1 and "手机号：不是有效的大陆手机号" in landline.output
    again = run("household", "member", "add", "H003", "--name", "王芳")
    assert again.exit_code == 1 and "已有名为“王芳”的成员" in again.output
    nameless = run("household", "member", "add", "H003", "--phone", "13800001111")
    assert nameless.exit_code == 1 and "成员姓名：不能为空" in nameless.output
    denied = run("household", "member", "add", "H003", "--name", "王强", as_="x:analyst")
    assert denied.exit_code == PermissionDenied.exit_code


def test_library_errors_are_crm_errors(seeded):
    with seeded.session() as session, pytest.raises(CrmError, match="不是可填写的字段"):
        add_household(session, {"code": "H300", "name": "某家", "colour": "red"})
