"""Claiming: one conditional UPDATE, so of two agents claiming at once exactly one wins, on
SQLite and on PostgreSQL, with real concurrent connections."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import select
from test_tickets import T0, make_world, minutes, opened

from crm.core.app import App
from crm.core.db import transaction
from crm.core.errors import CrmError, PermissionDenied
from crm.core.models import AuditEntry
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.service import tickets
from crm.plugins.service.models import Staff, Ticket, TicketEvent


def test_claim_sets_the_owner_once(session):
    make_world(session)
    number = opened(session)
    with transaction(session):
        ticket = tickets.claim(session, number, "王客服", now=T0)
    assert ticket.owner.name == "王客服"
    with pytest.raises(CrmError, match="已由 王客服 认领"):
        tickets.claim(session, number, "张技术", now=T0)
    session.rollback()
    with pytest.raises(CrmError, match="找不到在职员工"):
        tickets.claim(session, number, "路人甲")
    claims = session.scalars(select(TicketEvent.note).where(TicketEvent.action == "claim")).all()
    assert claims == ["由 王客服 认领"]


@pytest.mark.parametrize("rounds", [3])
def test_two_agents_claiming_at_once_exactly_one_wins(app, db_url, rounds):
    with app.session() as session:
        make_world(session)
        numbers = [opened(session, f"H{i % 4 + 1}", unit=None) for i in range(rounds)]
    for number in numbers:
        barrier = threading.Barrier(2)
        outcome: dict[str, str] = {}

        def agent(staff: str, number: str = number, barrier=barrier, outcome=outcome) -> None:
            # Each agent has its own App: its own engine, pool and connection.
            own = App(db_url, user=User(staff, "agent"), builtins=BUILTIN_PLUGINS)
            try:
                with own.session() as session:
                    session.scalar(select(Staff.id).limit(1))  # connect before the race
                    barrier.wait(timeout=10)
                    try:
                        with transaction(session):
                            tickets.claim(session, number, staff)
                        outcome[staff] = "won"
                    except CrmError as exc:
                        outcome[staff] = str(exc)
            finally:
                own.dispose()

        threads = [threading.Thread(target=agent, args=(name,)) for name in ("王客服", "张技术")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        winners = [name for name, result in outcome.items() if result == "won"]
        assert len(outcome) == 2 and len(winners) == 1, outcome
        winner = winners[0]
        loser = next(name for name in outcome if name != winner)
        assert outcome[loser] == (
            f"{number} 已由 {winner} 认领：如需转交，请 {winner} 本人、团队主管或经理"
            f"用 crm ticket reassign {number} 新负责人 办理。"
        )
        with app.session() as session:
            ticket = session.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket.owner.name == winner
            claims = session.scalars(
                select(TicketEvent).where(
                    TicketEvent.ticket_id == ticket.id, TicketEvent.action == "claim"
                )
            ).all()
            assert [e.actor for e in claims] == [winner]


def _as(session, name: str, role: str = "agent") -> None:
    session.info["user"] = User(name, role)


def test_reassign_by_the_owner_the_teams_supervisor_or_a_manager(session):
    make_world(session)
    number = opened(session)
    with transaction(session):
        ticket = tickets.claim(session, number, "王客服", now=T0)
        ticket.team_id = session.scalar(select(Staff.team_id).where(Staff.name == "王客服"))
    # Someone else at the desk may not take a colleague's ticket away.
    _as(session, "李安全")
    with pytest.raises(PermissionDenied, match="只有当前负责人 王客服、该工单团队的主管"):
        tickets.reassign(session, number, "李安全")
    session.rollback()
    _as(session, "王客服")  # the owner hands it on
    with transaction(session):
        tickets.reassign(session, number, "张技术", "  需工程部处理 ", now=T0 + minutes(5))
    _as(session, "陈主管")  # the service centre's supervisor (level 2) moves it again
    with transaction(session):
        tickets.reassign(session, number, "李安全", now=T0 + minutes(6))
    _as(session, "张技术")  # no longer the owner
    with pytest.raises(PermissionDenied):
        tickets.reassign(session, number, "王客服")
    session.rollback()
    _as(session, "刘经理", "manager")
    with pytest.raises(CrmError, match="已由 李安全 负责，无需转交"):
        tickets.reassign(session, number, "李安全")
    with pytest.raises(CrmError, match="找不到在职员工“路人甲”"):
        tickets.reassign(session, number, "路人甲")
    with transaction(session):
        tickets.reassign(session, number, "王客服", "回到客服中心", now=T0 + minutes(7))
    ticket = tickets.get_ticket(session, number)
    assert ticket.owner.name == "王客服"
    notes = session.scalars(
        select(TicketEvent.note)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "reassign")
        .order_by(TicketEvent.id)
    ).all()
    assert notes == [
        "由 王客服 转交 张技术：需工程部处理",
        "由 张技术 转交 李安全",
        "由 李安全 转交 王客服：回到客服中心",
    ]
    audited = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "reassign").order_by(AuditEntry.id)
    ).all()
    assert [(e.actor, e.changes) for e in audited] == [
        ("王客服", {"owner": ["王客服", "张技术"]}),
        ("陈主管", {"owner": ["张技术", "李安全"]}),
        ("刘经理", {"owner": ["李安全", "王客服"]}),
    ]


def test_reassign_refuses_a_closed_ticket_and_an_analyst(session):
    make_world(session)
    number = opened(session)
    with transaction(session):
        tickets.get_ticket(session, number).status = "closed"
    _as(session, "刘经理", "manager")
    with pytest.raises(CrmError, match="已关闭，不能转交"):
        tickets.reassign(session, number, "王客服")
    session.rollback()
    _as(session, "分析员", "analyst")
    with pytest.raises(PermissionDenied, match="无权转交工单"):
        tickets.reassign(session, number, "王客服")


def test_cli_reassigns_and_lists_a_households_tickets(run, app):
    with app.session() as session:
        make_world(session)
        first = opened(session, "H1")
        opened(session, "H2", unit=None, now=T0 + minutes(1))
        second = opened(session, "H1", kind="repair", now=T0 + dt.timedelta(days=3))
    moved = run("ticket", "reassign", first, "张技术", "--reason", "需上门", as_="刘经理:manager")
    assert moved.exit_code == 0, moved.output
    assert "负责人：" in moved.output and "张技术" in moved.output
    refused = run("ticket", "reassign", first, "王客服", as_="李安全:agent")
    assert refused.exit_code != 0 and "不能转交" in refused.output
    listed = run("ticket", "list", "--household", "H1", "--format", "json")
    assert [row["number"] for row in json.loads(listed.stdout)] == [first, second]
    # Opened from 29 April on, local dates (T0 is 28 April 08:05 in Shanghai).
    later = run("ticket", "list", "--household", "H1", "--since", "2026-04-29", "--format", "json")
    assert [row["number"] for row in json.loads(later.stdout)] == [second]
    day = run("ticket", "list", "--until", "2026-04-28")
    assert day.exit_code == 0 and second not in day.stdout
    assert day.stdout.splitlines()[-1] == "共 2 条，已全部显示。"
    page = run("ticket", "list", "--limit", "1", "--offset", "1")
    assert page.stdout.splitlines()[-1].startswith("显示 2–2 条，共 3 条；其余请加 --offset 2")
    unknown = run("ticket", "list", "--household", "NOPE")
    assert unknown.exit_code != 0 and "找不到客户编号为“NOPE”" in unknown.output
    backwards = run("ticket", "list", "--since", "2026-05-01", "--until", "2026-04-01")
    assert backwards.exit_code != 0 and "起始日期晚于截止日期" in backwards.output
    bad = run("ticket", "list", "--since", "4/29")
    assert bad.exit_code != 0 and "不是有效日期" in bad.output
