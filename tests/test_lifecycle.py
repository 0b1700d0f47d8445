"""The 6+2 lifecycle touchpoints: due days from each household's own dates, no duplicates when
planned again, the warranty settings, masked listings and recording the outcome."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Building, Household, Member, Project, Purchase, Unit
from crm.core.privacy import seal_member_fields
from crm.core.security import User
from crm.plugins.campaigns.lifecycle import (
    list_touchpoints,
    plan_touchpoints,
    record_touchpoint,
    set_warranty_settings,
)
from crm.plugins.campaigns.models import Touchpoint

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 25)
PHONE = "13712345678"
# code, purchase date, handover date, consent to contact
HOMES = [
    ("MOVED", dt.date(2025, 6, 1), dt.date(2026, 10, 31), True),  # care call 2026-11-30
    ("WARRANTY", dt.date(2023, 1, 1), dt.date(2025, 1, 20), True),  # warranty ends 2027-01-20
    ("BUILDING", dt.date(2026, 9, 10), None, True),  # construction contact 2026-12-10
    ("SIGNED", dt.date(2026, 11, 20), dt.date(2027, 12, 1), True),  # signing 2026-11-20
    ("ANNIV", dt.date(2020, 1, 1), dt.date(2021, 12, 5), True),  # 5th anniversary 2026-12-05
    ("QUIET", dt.date(2025, 6, 1), dt.date(2026, 10, 31), False),  # no consent: nothing
    ("FOURYR", dt.date(2021, 3, 1), dt.date(2022, 12, 20), True),  # 4 years on 2026-12-20
    ("EIGHT", dt.date(2017, 6, 1), dt.date(2019, 1, 15), True),  # 8 years on 2027-01-15
]


@pytest.fixture
def homes(app):
    with app.session() as session, transaction(session):
        vault = session.info["vault"]
        building = Building(project=Project(name="翠湖"), name="1栋")
        for number, (code, bought, handover, consent) in enumerate(HOMES):
            home = Household(
                code=code, name=f"{code}家", status="existing", consent_contact=consent
            )
            home.members.append(
                Member(name=f"{code}业主", role="owner", **seal_member_fields(vault, phone=PHONE))
            )
            home.purchases.append(
                Purchase(
                    contract_no=f"C{number}", unit=Unit(building=building, code=f"{number:04d}"),
                    purchase_date=bought, amount=1_000_000, handover_date=handover,
                )
            )  # fmt: skip
            session.add(home)


def _planned(session) -> set[tuple[str, str, dt.date]]:
    rows = session.execute(
        select(Household.code, Touchpoint.kind, Touchpoint.due_on).join(
            Household, Household.id == Touchpoint.household_id
        )
    )
    return {tuple(row) for row in rows}


def test_touchpoints_fall_due_from_each_households_own_dates(app, homes):
    until = dt.date(2027, 1, 31)
    with app.session() as session, transaction(session):
        added = plan_touchpoints(session, until, now=NOW)
    with app.session() as session:
        planned = _planned(session)
    assert planned == {
        ("MOVED", "care", dt.date(2026, 11, 30)),  # one month after move-in
        ("MOVED", "move_in", dt.date(2026, 10, 31)),  # 25 days ago: within the look-back
        ("WARRANTY", "warranty", dt.date(2026, 11, 21)),  # 60 days before 2027-01-20
        ("BUILDING", "construction", dt.date(2026, 12, 10)),  # three months after signing
        ("SIGNED", "signing", dt.date(2026, 11, 20)),
        ("ANNIV", "anniversary", dt.date(2026, 12, 5)),
        ("WARRANTY", "anniversary", dt.date(2027, 1, 20)),  # second move-in anniversary
        # 四年之约: the call that agrees the visit, a month before the 4th and 8th anniversaries
        ("FOURYR", "four_year", dt.date(2026, 11, 20)),
        ("FOURYR", "anniversary", dt.date(2026, 12, 20)),
        ("EIGHT", "four_year", dt.date(2026, 12, 15)),
        ("EIGHT", "anniversary", dt.date(2027, 1, 15)),
    }
    assert added["care"] == 1 and added["anniversary"] == 4 and added["four_year"] == 2
    assert sum(added.values()) == 11
    with app.session() as session:
        script = session.scalar(select(Touchpoint.script).where(Touchpoint.kind == "warranty"))
        anniversary = session.scalar(
            select(Touchpoint.script).where(Touchpoint.kind == "anniversary")
        )
    assert "2027-01-20" in script and "翠湖" in script
    assert "5周年" in anniversary or "2周年" in anniversary
    with app.session() as session:
        calls = dict(
            session.execute(
                select(Household.code, Touchpoint.script)
                .join(Household, Household.id == Touchpoint.household_id)
                .where(Touchpoint.kind == "four_year")
            ).all()
        )
    assert "即将满4年" in calls["FOURYR"] and "即将满8年" in calls["EIGHT"]


def test_planning_again_adds_nothing_twice(app, homes):
    with app.session() as session, transaction(session):
        plan_touchpoints(session, dt.date(2026, 12, 31), now=NOW)
    with app.session() as session, transaction(session):
        again = plan_touchpoints(session, dt.date(2026, 12, 31), now=NOW)
        later = plan_touchpoints(session, dt.date(2027, 1, 31), now=NOW + dt.timedelta(days=20))
    assert sum(again.values()) == 0
    # a later plan reaches into January: two more anniversaries (EIGHT's on 2027-01-15 and
    # WARRANTY's on 2027-01-20), nothing else
    assert {kind: n for kind, n in later.items() if n} == {"anniversary": 2}
    with app.session() as session:
        rows = session.execute(
            select(Touchpoint.household_id, Touchpoint.kind, Touchpoint.due_on, func.count())
            .group_by(Touchpoint.household_id, Touchpoint.kind, Touchpoint.due_on)
            .having(func.count() > 1)
        ).all()
        assert rows == []
        assert session.scalar(select(func.count()).select_from(Touchpoint)) == 11


def test_the_warranty_period_and_notice_are_settings(app, homes):
    with app.session() as session, transaction(session):
        set_warranty_settings(session, months=22, notice_days=20)
        plan_touchpoints(session, dt.date(2027, 1, 31), now=NOW, kinds=("warranty",))
        with pytest.raises(CrmError, match="1 到 120"):
            set_warranty_settings(session, months=0, notice_days=None)
    with app.session() as session:
        # handover 2025-01-20 + 22 months = 2026-11-20, notice 20 days before
        assert _planned(session) == {("WARRANTY", "warranty", dt.date(2026, 10, 31))}


def test_listing_masks_phones_and_a_done_touchpoint_leaves_the_list(app, homes, run):
    with app.session() as session, transaction(session):
        plan_touchpoints(session, dt.date(2027, 1, 31), now=NOW)
    with app.session() as session, transaction(session):
        session.info["user"] = User("李", "sales")
        rows = list_touchpoints(session, due_within=10, now=NOW)
    assert [(r["household"], r["kind"]) for r in rows] == [
        ("MOVED", "乔迁"),
        ("FOURYR", "四年之约"),
        ("SIGNED", "喜结连理"),
        ("WARRANTY", "承担责任"),
        ("MOVED", "嘘寒问暖"),
        ("ANNIV", "一路同行"),
    ]
    assert rows[0]["overdue_days"] == 25 and {r["phone"] for r in rows} == {"137****5678"}
    care = rows[4]["id"]
    done = run("campaign", "touchpoint-done", str(care), "--outcome", "已接通", "--note", "一切满意",
               "--format", "json", as_="赵:agent")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["outcome"] == "已接通"
    again = run("campaign", "touchpoint-done", str(care), "--outcome", "已接通")
    assert again.exit_code != 0 and "已于" in again.output
    with app.session() as session, transaction(session):
        left = list_touchpoints(session, due_within=10, kind="嘘寒问暖", now=NOW)
        with pytest.raises(CrmError):
            record_touchpoint(session, 999_999, "已接通")
    assert left == []
    listed = run("campaign", "touchpoints", "--due-within", "400", "--kind", "一路同行",
                 "--format", "json", as_="李:sales")  # fmt: skip
    assert listed.exit_code == 0, listed.output
    assert [r["household"] for r in json.loads(listed.stdout)] == [
        "ANNIV", "FOURYR", "EIGHT", "WARRANTY"
    ]  # fmt: skip
    planned = run("campaign", "plan-touchpoints", "--days", "30", "--format", "json")
    assert planned.exit_code == 0, planned.output
    assert "嘘寒问暖" in {row["kind"] for row in json.loads(planned.stdout)}
