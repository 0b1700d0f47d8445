"""Group complaints (群诉), from the seed's own case: a project's owners complain, each in their
own words, of the garbage dump outside the red line (红线外垃圾场) spoiling where they live, while
unrelated complaints come in from the same project. Detection finds the one shared problem;
the general manager leads it with an emergency group and a plan with due times; staff link,
unlink, merge and split, move the phase, change the leader and close it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select
from test_escalation import rows
from test_tickets import T0, make_world, minutes

from crm.core.db import transaction
from crm.plugins.service import escalation, groups, tickets
from crm.plugins.service.models import (
    GroupComplaint,
    GroupMember,
    GroupStep,
    ProjectManager,
    Staff,
    Ticket,
)

# Households H1…H8 live in 2区5栋, 3区5栋, 4区5栋, 5区5栋 in turn (make_world, 4 buildings).
DUMP = (
    ("H1", "小区红线外的垃圾场臭味很大，影响居住环境"),
    ("H2", "业主来电反映：红线外垃圾场每天焚烧垃圾，烟味飘进家里，希望尽快处理"),
    ("H3", "北边红线外垃圾场蚊蝇多、气味难闻，买房时销售没说"),
    ("H4", "垃圾场就在小区红线外，影响居住环境，要求开发商给说法"),
)
# What users saw wrongly joined into one group: three unrelated service complaints from three
# buildings, then a rude technician.
UNRELATED = (
    ("H5", "邻居装修超时施工，噪音影响休息"),
    ("H6", "对讲机维修后次日再次故障，业主对收取维修费不满"),
    ("H7", "对讲机按钮接触不良，无法开门"),
)
RUDE = ("H8", "维修人员语气生硬，质疑业主投诉证据，业主要求道歉")


def flat(code: str) -> str:
    return f"19{int(code[1:]) + 2:02d}"  # H1 lives in 1903, H2 in 1904 …


def complain(session, code, summary, at):
    """A complaint from the household's flat."""
    with transaction(session):
        ticket = tickets.open_ticket(
            session, code, "complaint", "phone", summary, unit=flat(code), now=at
        )
    return ticket.number


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


@pytest.fixture
def estate(session):
    made = make_world(session, households=8, buildings=4)
    made["project"].name = "金逸豪廷"
    session.commit()
    return made


def linked(session, group) -> list[str]:
    return list(
        session.scalars(
            select(Ticket.number).where(Ticket.group_id == group.id).order_by(Ticket.id)
        )
    )


def test_the_seeds_case_is_one_group_and_unrelated_complaints_stay_out(session, estate):
    noise = [complain(session, c, s, day(i * 0.5)) for i, (c, s) in enumerate(UNRELATED)]
    dump = [complain(session, c, s, day(1 + i)) for i, (c, s) in enumerate(DUMP[:2])]
    with transaction(session):
        # Three unrelated complaints of three buildings, two on the dump: no group yet.
        assert groups.detect_group_complaints(session, day(2.5)) == []
    dump.append(complain(session, *DUMP[2], day(3)))
    with transaction(session):
        found = escalation.run_escalations(session, day(3) + minutes(5))["groups"]
    assert len(found) == 1
    group = groups.get_group(session, found[0])
    assert linked(session, group) == dump
    assert group.households == 3 and group.building_id is None  # several buildings: the area
    assert group.project_id == estate["project"].id and group.phase == "emerging"
    # The general manager is the first person responsible; each ticket goes up to him.
    assert session.get(Staff, group.owner_id).name == "万总"
    assert rows(session, dump[0])[-1] == ("group", 4, "万总")
    steps = session.scalars(
        select(GroupStep).where(GroupStep.group_id == group.id).order_by(GroupStep.position)
    ).all()
    assert [s.step for s in steps][:2] == ["emergency_group", "key_issues"]
    assert steps[0].due_at == day(3) + minutes(5) + dt.timedelta(hours=2)
    # A fourth household's wording joins the open group; the rude technician does not.
    later = complain(session, *DUMP[3], day(5))
    rude = complain(session, *RUDE, day(5.1))
    with transaction(session):
        grown = groups.detect_group_complaints(session, day(5.2))
    assert [g.id for g in grown] == [group.id]
    assert linked(session, group) == [*dump, later]
    assert group.households == 4
    for number in [*noise, rude]:
        assert tickets.get_ticket(session, number).group_id is None
    with transaction(session):
        assert groups.detect_group_complaints(session, day(5.3)) == []
    assert session.scalar(select(func.count(GroupComplaint.id))) == 1


def test_the_same_trouble_in_flats_of_several_buildings_groups_per_building(session, estate):
    # A leak named in each owner's own flat: one problem per building at most.
    for i, code in enumerate(("H1", "H5", "H2", "H6")):  # 2区5栋 twice, 3区5栋 twice
        complain(session, code, f"{flat(code)} 室卫生间漏水，楼下天花板受潮", day(i * 0.1))
    with transaction(session):
        assert groups.detect_group_complaints(session, day(1), min_households=3) == []
        found = groups.detect_group_complaints(session, day(1), min_households=2)
    assert sorted(g.building_id for g in found) == sorted(b.id for b in estate["buildings"][:2])
    assert [g.households for g in found] == [2, 2]


def test_problem_text_leaves_out_who_reports_what_they_want_and_the_flat():
    assert groups.problem_text(
        "业主来电反映：3-1203 室地漏堵塞，要求赔偿，业主已在业主群发视频"
    ) == ["室地漏堵塞"]
    assert groups.names_a_flat("3-1203 室地漏堵塞") and not groups.names_a_flat("地下车库积水")
    similar = groups.Similarity([s for _, s in DUMP + UNRELATED])
    assert similar(DUMP[0][1], DUMP[3][1]) >= groups.SIMILAR
    assert similar(UNRELATED[1][1], UNRELATED[2][1]) < groups.SIMILAR  # both the intercom


def test_settings_set_the_window_and_the_households(session, estate):
    from crm.core.models import Setting

    session.add(Setting(key=groups.WINDOW_DAYS_KEY, value="2"))
    session.commit()
    for i, (code, summary) in enumerate(DUMP[:3]):
        complain(session, code, summary, day(i * 1.5))  # days 0, 1.5, 3: never 3 within 2 days
    with transaction(session):
        assert groups.detect_group_complaints(session, day(3.1)) == []
    session.add(Setting(key=groups.MIN_HOUSEHOLDS_KEY, value="2"))
    session.commit()
    with transaction(session):
        assert len(groups.detect_group_complaints(session, day(3.1))) == 1


def _detected(session):
    numbers = [complain(session, c, s, day(i * 0.2)) for i, (c, s) in enumerate(DUMP)]
    other = [complain(session, c, s, day(1)) for c, s in UNRELATED]
    with transaction(session):
        (group,) = groups.detect_group_complaints(session, day(1.1))
    return group.number, numbers, other


def test_staff_link_unlink_merge_split_and_the_plan_by_cli(run, app):
    with app.session() as session:
        estate = make_world(session, households=8, buildings=4)
        session.add(ProjectManager(project_id=estate["project"].id, staff_id=5))  # 刘经理
        session.commit()
        code, dump, other = _detected(session)
        team = session.scalars(
            select(Staff.name)
            .join(GroupMember, GroupMember.staff_id == Staff.id)
            .order_by(GroupMember.id)
        ).all()
    assert team == ["万总", "刘经理"]  # the leader and the project's responsible manager

    result = run("ticket", "groups", "--format", "json")
    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.output)
    assert listed["project"] == "四季花城" and listed["building"] == "全项目"
    assert listed["owner"] == "万总" and listed["households"] == 4 and listed["phase"] == "emerging"
    assert listed["overdue_steps"] == 8  # detected in April: every due time has passed
    table = run("ticket", "groups").output
    assert "萌发期" in table and "四季花城" in table and "全项目" in table

    # Unlink: refused without a reason, then never linked again by detection.
    result = run("ticket", "group", "unlink", code, dump[3])
    assert result.exit_code == 2 and "--note" in result.output
    assert run("ticket", "group", "unlink", code, dump[3], "--note", "另一问题").exit_code == 0
    with app.session() as session, transaction(session):
        assert groups.detect_group_complaints(session, day(1.2)) == []
        assert tickets.get_ticket(session, dump[3]).group_id is None
    assert run("ticket", "group", "link", code, dump[3]).exit_code == 0
    result = run("ticket", "group", "link", code, dump[3])
    assert result.exit_code == 1 and "已在群诉" in result.output

    # Split two tickets off, then merge them back.
    result = run("ticket", "group", "split", code, dump[2], dump[3], "--format", "json")
    assert result.exit_code == 0, result.output
    split = json.loads(result.output)
    assert (
        split["households"] == 2 and len(split["plan"]) == 8 and split["owner"].startswith("万总")
    )
    result = run("ticket", "group", "merge", code, split["number"], "--format", "json")
    assert json.loads(result.output)["households"] == 4
    result = run("ticket", "groups", "--status", "merged", "--format", "json")
    assert [g["number"] for g in json.loads(result.output)] == [split["number"]]
    result = run("ticket", "group", "link", split["number"], other[0])
    assert result.exit_code == 1 and "已合并" in result.output

    # The phases are the seed's four; codes and Chinese names both work.
    result = run(
        "ticket", "group", "phase", code, "爆发期", "--note", "业主联名", "--format", "json"
    )
    assert json.loads(result.output)["phase"] == "outbreak"
    result = run("ticket", "group", "phase", code, "突发期")
    assert result.exit_code == 1 and "潜伏期" in result.output and "灾难期" in result.output

    # Changing the leader is a manager's decision, and the leader is a manager or above.
    result = run("ticket", "group", "lead", code, "刘经理", as_="小王:agent")
    assert result.exit_code == 3 and "无权" in result.output
    result = run("ticket", "group", "lead", code, "陈主管")
    assert result.exit_code == 1 and "经理或总经理" in result.output
    assert run("ticket", "group", "lead", code, "刘经理", as_="王经理:manager").exit_code == 0
    assert run("ticket", "group", "member", code, "王客服").exit_code == 0

    # The plan: overdue steps are listed; closing waits until every step is done.
    result = run("ticket", "group", "overdue", "--format", "json")
    assert [r["step"] for r in json.loads(result.output)][:2] == ["emergency_group", "key_issues"]
    result = run("ticket", "group", "close", code, "--result", "已解决", as_="王经理:manager")
    assert result.exit_code == 1 and "统一口径" in result.output
    at = "2026-04-30 09:00"  # local time, after the detection on 04-29
    for step, _label, _hours in groups.PLAN:
        result = run("ticket", "group", "step", code, step, "--note", "已完成", "--at", at)
        assert result.exit_code == 0, result.output
    result = run("ticket", "group", "step", code, "recovery", "--note", "再次")
    assert result.exit_code == 1 and "已于" in result.output
    assert json.loads(run("ticket", "group", "overdue", "--format", "json").output) == []
    result = run(
        "ticket", "group", "close", code, "--result", "垃圾场迁走", "--format", "json",
        as_="王经理:manager",
    )  # fmt: skip
    closed = json.loads(result.output)
    assert closed["status"] == "closed" and closed["result"] == "垃圾场迁走"
    assert [e["action"] for e in closed["events"]].count("step") == 8
    result = run("ticket", "group", "show", code)
    assert "应急小组" in result.output and "刘经理" in result.output and "已结束" in result.output


def test_a_group_staff_open_in_the_latent_phase(session, estate):
    with transaction(session):
        group = groups.create_group(
            session, "金逸豪廷", "红线外将建垃圾场", building="2区5栋", now=day(0)
        )
    assert group.phase == "latent" and group.building_id == estate["buildings"][0].id
    assert session.get(Staff, group.owner_id).name == "万总"
    number = complain(session, *DUMP[0], day(1))
    with transaction(session):
        groups.link_tickets(session, group.number, [number], now=day(1))
    assert group.households == 1
    with pytest.raises(groups.NotFound):
        groups.create_group(session, "金逸豪廷", "x", building="9栋")


def test_the_migration_gives_open_groups_their_plan_and_topic(app):
    from sqlalchemy import text
    from test_migrations import _migrate

    from crm.core.migrate import upgrade

    with app.session() as session:
        make_world(session, households=3)
        number = complain(session, *DUMP[0], day(0))
    try:
        # The revision before the group complaints' own (svc0004 came after svc0006).
        _migrate(app, "service", "svc0006")
        with app.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO svc_group_complaints (number, category, phase, owner_id, status,"
                    " detected_at, households, created_at, updated_at) VALUES ('QS1', 'service',"
                    " 'emerging', 5, 'open', :t, 1, :t, :t)"
                ),
                {"t": day(1)},
            )
            connection.execute(
                text("UPDATE svc_tickets SET group_id = (SELECT id FROM svc_group_complaints)")
            )
    finally:
        upgrade(app.engine, app.migration_chains())
    with app.session() as session:
        group = groups.get_group(session, "QS1")
        assert group.topic == DUMP[0][1] and linked(session, group) == [number]
        plan = groups.plan(session, "QS1", now=day(1.5))
        assert [row["step"] for row in plan] == [code for code, _label, _hours in groups.PLAN]
        assert plan[0]["due_at"] == day(1) + dt.timedelta(hours=2) and plan[0]["overdue"]
        assert not plan[1]["overdue"]
        members = session.scalars(select(GroupMember.staff_id)).all()
        assert members == [5]
