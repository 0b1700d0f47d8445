"""Two simulated months of a service centre (300 households): calls, repairs, revisits, the
scheduler's periodic work, coordination cycles and the four-year visits, run through the real
library on a moving clock. What must never accumulate does not: complaints or warnings the
system made for itself, a warning growing stronger with no word from the customer, the card
disagreeing with the tickets, a household contacted twice for one cause, staff's normal work
refused. The full year on 3,000 households is bench/simulate.py."""

from __future__ import annotations

import datetime as dt
import json

from crm.core.clock import as_local
from crm.simulation import Month, Options, Simulation

START = as_local(dt.datetime(2026, 1, 1)).astimezone(dt.UTC)


def test_two_months_of_a_service_centre_leave_nothing_behind(app):
    simulation = Simulation(app, Options(households=300, months=2, start=START, check_minutes=180))
    months = simulation.run()
    assert [m.month for m in months] == ["2026-01", "2026-02"]
    assert simulation.refusals == []
    for month in months:
        for name in Month.MUST_BE_ZERO:
            assert getattr(month, name) == 0, (month.month, name)
    first, second = months
    # The centre worked: calls came in, the loop of warnings, decisions and tasks ran and
    # settled (every task given was done, the decisions closed with the customers' answers).
    assert first.calls > 30 and second.calls > 30
    assert first.warnings > 0 and first.tasks > 0 and first.decisions_closed > 0
    assert second.tasks_open <= 2
    assert first.visits + second.visits > 0 and first.surveys > 0
    assert first.breaches > 0 and first.escalations > 0  # some work ran late, and was seen
    # Nothing piles up: the requests of a month are worked off, none stays for weeks.
    assert second.open_tickets <= first.open_tickets + 5
    assert first.stuck_tickets == second.stuck_tickets == 0
    assert 0.6 < second.satisfaction_rate <= 1


def test_the_command_prints_the_months_and_says_all_is_well(run):
    result = run(
        "simulate", "--households", "60", "--months", "1", "--check-every", "240",
        "--start", "2026-03-01 00:00", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [month] = json.loads(result.stdout)
    assert month["month"] == "2026-03" and month["calls"] > 0
    assert all(month[name] == 0 for name in Month.MUST_BE_ZERO)
    assert "必须为零的各项均为零" in result.stderr
    refused = run("simulate", "--months", "1", as_="小王:agent")
    assert refused.exit_code != 0 and "无权运行服务中心模拟" in refused.output
