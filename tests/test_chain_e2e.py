"""The value chain end to end on the demo data, through the real plugins and the CLI: a
dissatisfied revisit becomes feedback (satisfaction), is assessed (profitability) and the plan
is given as a task to the plan's team with its reasons (service handling); when the task is
done with the customer's answer, the decision in the coordination log is closed with it."""

from __future__ import annotations

import json

from sqlalchemy import select

from crm.core.db import transaction
from crm.core.models import Household
from crm.plugins.service.models import Team, Ticket
from crm.plugins.service.tickets import revisit


def test_a_dissatisfied_revisit_is_assessed_and_dispatched_to_the_plans_team(
    run, app, fixed_now_text
):
    built = run("demo", "--households", "300", "--now", fixed_now_text)
    assert built.exit_code == 0, built.output

    with app.session() as session, transaction(session):
        ticket, code = session.execute(
            select(Ticket, Household.code)
            .join(Household, Ticket.household_id == Household.id)
            .where(Ticket.status == "closed", Ticket.ticket_type == "complaint")
            .order_by(Ticket.id)
            .limit(1)
        ).one()
        revisit(
            session,
            ticket.number,
            csat=1,
            nps=0,
            aspects={"处理结果": (9, 2), "响应速度": (8, 3)},
            comment="问题根本没有解决，非常失望",
            reopen_ticket=True,
        )

    detected = run(
        "satisfaction", "warnings", "--detect", "--status", "pending", "--format", "json"
    )
    assert detected.exit_code == 0, detected.output
    warned = [row for row in json.loads(detected.stdout) if row["household"] == code]
    assert any("体验低于期望" in row["reason"] for row in warned)

    ran = run("coordinate", "run", "--format", "json")
    assert ran.exit_code == 0, ran.output
    counts = json.loads(ran.stdout)
    assert counts["collected"] >= 1 and counts["dispatched"] >= 1

    logged = run("coordinate", "log", "--household", code, "--format", "json", "--limit", "1000")
    assert logged.exit_code == 0, logged.output
    [decision] = [
        row
        for row in json.loads(logged.stdout)
        if row["source"] == "satisfaction.satisfaction_drop" and "体验低于期望" in row["reason"]
    ]
    assert decision["status"] == "dispatched"
    assert len(decision["options"]) >= 2
    best = max(decision["options"], key=lambda plan: plan["expected_value"])
    assert decision["plan"] == best["name"] and decision["plan_reason"] == best["reason"]

    [number] = decision["work"]
    shown = run("task", "show", number, "--format", "json")
    assert shown.exit_code == 0, shown.output
    task = json.loads(shown.stdout)
    assert task["household"] == code and task["ticket"] is None
    assert task["origin"] == "coordination" and task["feedback"] == decision["feedback"]
    assert best["reason"] in task["description"] and best["name"] in task["description"]
    assert "体验低于期望" in task["description"]
    with app.session() as session:
        team = session.scalar(select(Team).where(Team.code == decision["team"]))
    assert team.kind == (best["team"] or "customer_service") or team.code == best["team"]
    assert task["team"] == team.name

    done = run("task", "done", number, "--answer", "接受上门致歉", "--accepted")
    assert done.exit_code == 0, done.output
    again = run("coordinate", "run", "--format", "json")
    assert json.loads(again.stdout)["closed"] >= 1
    logged = run("coordinate", "log", "--household", code, "--format", "json", "--limit", "1000")
    [closed] = [row for row in json.loads(logged.stdout) if row["id"] == decision["id"]]
    assert (closed["status"], closed["answer"], closed["accepted"]) == (
        "closed",
        "接受上门致歉",
        True,
    )
