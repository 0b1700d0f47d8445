"""The complaint record (seed 003's eight-step method and complaint register, seed 000's
causes of dissatisfaction, seed 001's continuous improvement), on the flooded flat 1903
(seed 002): the owner called twice before anyone came, so she complained.

- options: step 4 offers several workable options, one after another; the customer chooses;
- causes: recorded at the feedback step (several), grouped by `crm satisfaction report --by
  cause` and counted in the hot spots' input;
- the register shows customer, number, nature, causes and result;
- improvement plans drawn from the statistics have an owner and a due time;
- arrival on site: the work order records it and the KPIs show the time to arrive.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.plugins.service import dispatch, tickets
from crm.plugins.service.complaint_record import choose_option, offer_options
from tests.test_tickets import make_world, minutes

T0 = dt.datetime(2026, 4, 28, 0, 5, tzinfo=dt.UTC)  # 08:05 local, the owner's first call


def _walk_to_revisit(session, household="H1") -> str:
    """The complaint up to its revisit, with options offered and one chosen."""
    with transaction(session):
        number = tickets.open_ticket(
            session, household, "complaint", "phone", "阳台地漏堵塞，雨水倒灌进屋；两次来电才有人来",
            unit="1903", now=T0 + minutes(1), at=T0,
        ).number  # fmt: skip
        tickets.step(session, number, "confirm", now=T0 + minutes(2))
        tickets.assess(
            session, number, "important", "engineering", ["fix_now", "never_again"],
            now=T0 + minutes(3),
        )  # fmt: skip
        tickets.step(session, number, "investigate", now=T0 + minutes(4))
        order = dispatch.create_work_order(
            session, tickets.get_ticket(session, number), "remedial", "疏通地漏、清理积水",
            now=T0 + minutes(5),
        )  # fmt: skip
        dispatch.record_arrival(session, order.number, now=T0 + minutes(30), at=T0 + minutes(25))
        made = offer_options(
            session, number, ["今天上门疏通地漏并清理积水", "疏通后免费检查全屋防水"],
            now=T0 + minutes(26),
        )  # fmt: skip
        assert [o.seq for o in made] == [1, 2]
        more = offer_options(session, number, ["另赔偿受损木地板的清洁费用"], now=T0 + minutes(27))
        assert more[0].seq == 3  # offered one after another, numbered on
    with pytest.raises(CrmError, match="客户还没有选定"):
        tickets.reply(
            session, number, what="疏通地漏", due_at=T0 + minutes(120), promised_by="张技术",
            now=T0 + minutes(28),
        )  # fmt: skip
    session.rollback()
    with pytest.raises(CrmError, match="没有方案 7"):
        choose_option(session, number, 7, now=T0 + minutes(28))
    session.rollback()
    with transaction(session):
        choose_option(session, number, 2, now=T0 + minutes(28))
        tickets.reply(
            session, number, what="疏通地漏并检查全屋防水", due_at=T0 + minutes(120),
            promised_by="张技术", now=T0 + minutes(29),
        )  # fmt: skip
        dispatch.complete_work_order(session, order.number, "地漏已疏通", now=T0 + minutes(60))
        tickets.close(session, number, True, "业主确认地漏畅通", now=T0 + minutes(70))
        tickets.revisit(session, number, csat=3, nps=6, now=T0 + minutes(200))
    return number


def test_causes_options_register_and_the_report_by_cause(app, run):
    with app.session() as session:
        make_world(session)
        number = _walk_to_revisit(session)
        with pytest.raises(CrmError, match="投诉的信息反馈须记录客户投诉的原因"):
            tickets.feedback(session, number, "安全员判断不严重未上报", "所有派单跟踪到关闭",
                             now=T0 + minutes(300))  # fmt: skip
        session.rollback()
        with pytest.raises(CrmError, match="不认识的投诉原因"):
            tickets.feedback(session, number, "x", "y", now=T0 + minutes(300), causes=["天气"])
        session.rollback()

    done = run(
        "ticket", "feedback", number, "--root-cause", "安全员判断不严重未上报",
        "--action", "所有派单由信息中心跟踪到关闭", "--cause", "不闹不被重视",
        "--cause", "unprofessional,工作失误或服务缺陷", "--at", "2026-04-28 13:30",
    )  # fmt: skip
    assert done.exit_code == 0, done.output

    shown = json.loads(run("ticket", "show", number, "--format", "json").output)
    assert shown["causes"] == ["not_heeded", "unprofessional", "work_error"]
    assert [(o["seq"], o["chosen"]) for o in shown["options"]] == [
        (1, False),
        (2, True),
        (3, False),
    ]
    assert shown["arrived_at"] == "2026-04-28T00:30:00+00:00"
    table = run("ticket", "show", number).output
    assert "投诉原因：" in table and "不闹不被重视、处理不专业、工作失误或服务缺陷" in table
    assert "疏通后免费检查全屋防水" in table

    # The complaint register: customer, number, nature, causes, result.
    entries = json.loads(
        run("ticket", "register", "--kind", "complaint", "--format", "json").output
    )
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["number"], entry["household"], entry["severity"], entry["category"]) == (
        number, "H1", "important", "engineering",
    )  # fmt: skip
    assert entry["causes"] == ["not_heeded", "unprofessional", "work_error"]
    assert entry["result"].startswith("业主确认地漏畅通") and "纠正措施" in entry["result"]

    # Why they complain: one row per cause, the revisit's survey and the ticket in each.
    report = json.loads(run("satisfaction", "report", "--by", "cause", "--format", "json").output)
    by_cause = {row["key"]: row for row in report}
    assert set(by_cause) == {"not_heeded", "unprofessional", "work_error"}
    for row in by_cause.values():
        assert (row["surveys"], row["tickets"], row["closed"]) == (1, 1, 1)
        assert row["satisfaction_rate"] == 0.0  # CSAT 3 is not satisfied
        assert row["mean_arrive_minutes"] == 25.0  # called 08:05, on site 08:30
    assert by_cause["not_heeded"]["label"] == "不闹不被重视"
    assert "不闹不被重视" in run("satisfaction", "report", "--by", "cause").output

    # The hot spots' input counts the causes with the complaints.
    with app.session() as session:
        counted = session.info["pm"].hook.complaint_counts(
            session=session, since=T0 - minutes(600), until=T0 + minutes(6000), grain="month"
        )
    assert [(r["count"], r["causes"]) for r in counted] == [
        (1, {"not_heeded": 1, "unprofessional": 1, "work_error": 1})
    ]


def test_a_suggestion_has_no_cause_and_options_close_with_the_ticket(app, run):
    with app.session() as session:
        make_world(session)
        with transaction(session):
            number = tickets.open_ticket(
                session, "H2", "suggestion", "letter", "车库入口坡度太大", now=T0
            ).number
            tickets.assess(session, number, "general", "design", [], now=T0 + minutes(5))
            tickets.reply(session, number, note="已转设计部", now=T0 + minutes(50))
            tickets.close(session, number, True, now=T0 + minutes(55))
        with pytest.raises(CrmError, match="不是投诉，不记录投诉原因"):
            tickets.feedback(session, number, "坡度", "改缓", now=T0 + minutes(60),
                             causes=["high_expectation"])  # fmt: skip
        session.rollback()
        with pytest.raises(CrmError, match="不能再提出方案"):
            offer_options(session, number, ["改缓坡道"], now=T0 + minutes(60))


def test_improvement_plans_from_the_statistics(app, run):
    with app.session() as session:
        make_world(session)
        number = _walk_to_revisit(session)
        with transaction(session):
            tickets.feedback(session, number, "未上报", "跟踪到关闭", now=T0 + minutes(300),
                             causes=["not_heeded"])  # fmt: skip
    refused = run(
        "improvement", "add", "--what", "派单跟踪", "--owner", "陈主管", "--due", "2026-06-30",
        as_="王客服:agent",
    )  # fmt: skip
    assert refused.exit_code != 0 and "无权制定改进计划" in refused.output
    made = run(
        "improvement", "add", "--what", "所有派单由信息中心跟踪到关闭；雨季前培训风险判断",
        "--owner", "陈主管", "--due", "2099-06-30", "--since", "2026-04-01",
        "--until", "2026-04-30", "--cause", "不闹不被重视", "--category", "工程",
        "--format", "json", as_="刘经理:manager",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    plan = json.loads(made.output)
    assert plan["basis_count"] == 1 and plan["owner"] == "陈主管" and plan["status"] == "open"
    assert plan["period"] == "2026-04-01 至 2026-04-30"
    other = json.loads(
        run(
            "improvement", "add", "--what", "统一说辞", "--owner", "刘经理", "--due", "2099-05-31",
            "--since", "2026-04-01", "--until", "2026-04-30", "--cause", "员工说法不一",
            "--format", "json",
        ).output
    )  # fmt: skip
    assert other["basis_count"] == 0
    listed = json.loads(run("improvement", "list", "--format", "json").output)
    assert [p["number"] for p in listed] == [other["number"], plan["number"]]  # earliest due
    assert run("improvement", "done", plan["number"], "--outcome", " ").exit_code != 0
    done = run("improvement", "done", plan["number"], "--outcome", "4 月起派单全部跟踪到关闭")
    assert done.exit_code == 0, done.output
    still = json.loads(run("improvement", "list", "--status", "open", "--format", "json").output)
    assert [p["number"] for p in still] == [other["number"]]
    again = run("improvement", "done", plan["number"], "--outcome", "再次")
    assert again.exit_code != 0 and "已于" in again.output


def test_arrival_is_recorded_once_and_not_before_dispatch(app, run):
    with app.session() as session:
        make_world(session)
        with transaction(session):
            number = tickets.open_ticket(
                session, "H3", "complaint", "phone", "楼道灯不亮", now=T0
            ).number
            tickets.step(session, number, "confirm", now=T0 + minutes(1))
            tickets.assess(session, number, "general", "engineering", ["fix_now"],
                           now=T0 + minutes(2))  # fmt: skip
            order = dispatch.create_work_order(
                session,
                tickets.get_ticket(session, number),
                "remedial",
                "换灯",
                now=T0 + minutes(3),
            )
        order_no = order.number
        with pytest.raises(CrmError, match="不能早于派工时间"):
            dispatch.record_arrival(session, order_no, now=T0 + minutes(9), at=T0 + minutes(2))
        session.rollback()
    arrived = run("workorder", "arrive", order_no, "--at", "2026-04-28 08:17")
    assert arrived.exit_code == 0, arrived.output
    again = run("workorder", "arrive", order_no)
    assert again.exit_code != 0 and "已于 2026-04-28 08:17 登记到场" in again.output
    report = json.loads(
        run("satisfaction", "report", "--by", "category", "--format", "json").output
    )
    assert [r["mean_arrive_minutes"] for r in report if r["key"] == "engineering"] == [12.0]
