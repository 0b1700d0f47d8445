"""Active retention: member-club enrolment and tiers with their kept history, owner reward
activities with capacity, one sign-up per household and attendance, and the card sections."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from crm.core.card import build_card
from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Household
from crm.plugins.service.models import ActivitySignup, ClubEnrollment
from crm.plugins.service.retention import (
    change_tier,
    club_history,
    create_activity,
    enrol,
    list_activities,
    list_members,
    record_attendance,
    show_activity,
    sign_up,
)

NOW = dt.datetime(2026, 9, 1, 2, 0, tzinfo=dt.UTC)
HELD = dt.datetime(2026, 9, 20, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def households(app):
    with app.session() as session, transaction(session):
        for code, name in (("H1", "张伟家"), ("H2", "李娜家"), ("H3", "王强家")):
            session.add(Household(code=code, name=name, status="existing"))


def test_enrolment_and_tier_changes_keep_their_history(app, households):
    with app.session() as session, transaction(session):
        enrol(session, "H1", now=NOW)
        assert session.scalar(select(Household.member_tier).where(Household.code == "H1")) == (
            "standard"
        )
        with pytest.raises(CrmError, match="已是会员"):
            enrol(session, "H1", "gold", now=NOW)
        change_tier(session, "H1", "金卡", "年度升级", now=NOW + dt.timedelta(days=30))
        with pytest.raises(CrmError, match="无需调整"):
            change_tier(session, "H1", "gold", now=NOW)
        with pytest.raises(CrmError, match="还不是会员"):
            change_tier(session, "H2", "gold", now=NOW)
        with pytest.raises(CrmError, match="不认识的会员等级"):
            enrol(session, "H2", "diamond", now=NOW)
        change_tier(session, "H1", "none", "本人要求退会", now=NOW + dt.timedelta(days=60))
        enrol(session, "H2", "silver", now=NOW)
    with app.session() as session:
        history = club_history(session, "H1")
        assert [(h["previous_tier"], h["tier"]) for h in history] == [
            ("none", "standard"),
            ("standard", "gold"),
            ("gold", "none"),
        ]
        assert history[1]["note"] == "年度升级" and history[0]["by"] == "测试管理员"
        assert session.scalar(select(func.count(ClubEnrollment.id))) == 4
        members = list_members(session)
        assert [(m["code"], m["tier"]) for m in members] == [("H2", "silver")]
        assert list_members(session, tier="gold") == []


def test_activity_capacity_one_signup_per_household_and_attendance(app, households):
    with app.session() as session, transaction(session):
        activity = create_activity(session, "中秋业主游园会", HELD, capacity=2, cost="5000")
        sign_up(session, activity.id, "H1", now=NOW)
        with pytest.raises(CrmError, match="每户只报名一次"):
            sign_up(session, activity.id, "H1", now=NOW)
        sign_up(session, activity.id, "H2", now=NOW)
        with pytest.raises(CrmError, match="名额已满"):
            sign_up(session, activity.id, "H3", now=NOW)
        with pytest.raises(CrmError, match="还没有开始"):
            record_attendance(session, activity.id, "H1", now=NOW)
        after = HELD + dt.timedelta(hours=3)
        with pytest.raises(CrmError, match="已经开始或结束"):
            sign_up(session, activity.id, "H3", now=after)
        with pytest.raises(CrmError, match="没有报名"):
            record_attendance(session, activity.id, "H3", now=after)
        record_attendance(session, activity.id, "H1", now=after)
        record_attendance(session, activity.id, "H2", attended=False, now=after)
        with pytest.raises(CrmError, match="名额至少为 1"):
            create_activity(session, "空活动", HELD, capacity=0)
    with app.session() as session:
        [row] = list_activities(session)
        assert (row["capacity"], row["signed_up"], row["attended"]) == (2, 2, 1)
        shown = show_activity(session, row["id"])
        assert [(s["code"], s["attended"]) for s in shown["signups"]] == [
            ("H1", True),
            ("H2", False),
        ]
        assert session.scalar(select(func.count(ActivitySignup.id))) == 2


def test_the_card_shows_club_history_and_activities_only_when_there_are_any(app, households):
    with app.session() as session, transaction(session):
        enrol(session, "H1", "gold", note="万客会入会", now=NOW)
        activity = create_activity(session, "业主篮球赛", HELD)
        sign_up(session, activity.id, "H1", now=NOW)
        record_attendance(session, activity.id, "H1", now=HELD)
    with app.session() as session:
        card = build_card(session, "H1")
        sections = {s.title: s for s in card.sections}
        club = sections["会员俱乐部"]
        assert dict(club.lines)["当前等级"] == "金卡"
        assert club.rows[0]["新等级"] == "金卡" and club.rows[0]["说明"] == "万客会入会"
        assert dict(sections["业主回馈活动"].lines) == {"报名次数": 1, "出席次数": 1}
        assert "【业主回馈活动】" in card.render()
        titles = [s.title for s in build_card(session, "H2").sections]
        assert "会员俱乐部" not in titles and "业主回馈活动" not in titles


def test_cli_club_and_activities(app, households, run):
    assert run("club", "enrol", "H1", "--tier", "银卡").exit_code == 0
    tiered = run("club", "tier", "H1", "gold", "--note", "推荐成交两套")
    assert tiered.exit_code == 0 and "银卡 → 金卡" in tiered.output
    members = json.loads(run("club", "list", "--format", "json").output)
    assert [(m["code"], m["tier"], m["changes"]) for m in members] == [("H1", "gold", 2)]
    table = run("club", "list").output
    assert "金卡" in table and "gold" not in table
    history = json.loads(run("club", "list", "--household", "H1", "--format", "json").output)
    assert [h["tier"] for h in history] == ["silver", "gold"]
    again = run("club", "enrol", "H1")
    assert again.exit_code != 0 and "crm club tier H1" in again.output

    created = run(
        "activity", "create", "业主答谢晚宴", "--at", "2099-12-31 19:00", "--capacity", "1"
    )
    assert created.exit_code == 0, created.output
    activity_id = json.loads(run("activity", "list", "--format", "json").output)[0]["id"]
    assert run("activity", "signup", str(activity_id), "H1").exit_code == 0
    full = run("activity", "signup", str(activity_id), "H2")
    assert full.exit_code != 0 and "名额已满" in full.output
    early = run("activity", "attend", str(activity_id), "H1")
    assert early.exit_code != 0 and "还没有开始" in early.output
    shown = json.loads(run("activity", "show", str(activity_id), "--format", "json").output)
    assert shown["signed_up"] == 1 and shown["signups"][0]["code"] == "H1"
    table = run("activity", "show", str(activity_id))
    assert table.exit_code == 0 and "业主答谢晚宴" in table.output
    missing = run("activity", "show", "999")
    assert missing.exit_code != 0 and "找不到编号为 999" in missing.output


def test_cli_actions_answer_in_json(app, households, run):
    def json_of(*args: str) -> dict:
        result = run(*args, "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    enrolled = json_of("club", "enrol", "H1", "--tier", "silver")
    assert (enrolled["code"], enrolled["previous_tier"], enrolled["tier"]) == (
        "H1",
        "none",
        "silver",
    )
    tiered = json_of("club", "tier", "H1", "gold")
    assert (tiered["previous_tier"], tiered["tier"]) == ("silver", "gold")
    created = json_of(
        "activity", "create", "中秋游园会", "--at", "2099-09-20 14:00", "--cost", "800"
    )
    assert created["name"] == "中秋游园会" and created["signed_up"] == 0
    signed = json_of("activity", "signup", str(created["id"]), "H2")
    assert (signed["activity"], signed["code"], signed["attended"]) == ("中秋游园会", "H2", None)
    csv_out = run("club", "tier", "H1", "platinum", "--format", "csv").output.splitlines()
    assert csv_out[0].split(",")[:4] == ["message", "code", "previous_tier", "tier"]
    with app.session() as session, transaction(session):
        past = create_activity(session, "业主篮球赛", NOW - dt.timedelta(days=1))
        session.add(ActivitySignup(activity_id=past.id, household_id=1, signed_up_at=NOW))
    attended = json_of("activity", "attend", str(past.id), "H1", "--absent")
    assert attended["attended"] is False and "缺席" in attended["message"]
