"""Claiming: one conditional UPDATE, so of two agents claiming at once exactly one wins, on
SQLite and on PostgreSQL, with real concurrent connections."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from test_tickets import T0, make_world, opened

from crm.core.app import App
from crm.core.db import transaction
from crm.core.errors import CrmError
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
        assert outcome[loser] == f"{number} 已由 {winner} 认领：如需转交请联系其主管。"
        with app.session() as session:
            ticket = session.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket.owner.name == winner
            claims = session.scalars(
                select(TicketEvent).where(
                    TicketEvent.ticket_id == ticket.id, TicketEvent.action == "claim"
                )
            ).all()
            assert [e.actor for e in claims] == [winner]
