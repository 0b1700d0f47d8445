"""Complaint hot spots on planted counts: a leak spike in one building this month against its
own quiet history is flagged, a steady series is not, a spike spread over two buildings shows
only as a project-wide one, and the week grain and the CLI give the same answer."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from test_tickets import make_world

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.plugins.analysis.hotspots import hot_spots, period_start
from crm.plugins.service.models import Ticket

NOW = dt.datetime(2026, 11, 20, 4, 0, tzinfo=dt.UTC)  # Friday 20 Nov 2026, noon in Shanghai
# Engineering complaints in building A in each of the twelve months before November 2026.
QUIET = [1, 0, 2, 1, 0, 1, 2, 0, 1, 1, 0, 2]


def months_back(months: int, day: int) -> dt.datetime:
    """Noon (Shanghai) on `day` of the month `months` before November 2026."""
    index = 2026 * 12 + 10 - months
    return dt.datetime(index // 12, index % 12 + 1, day, 4, 0, tzinfo=dt.UTC)


@pytest.fixture
def planted(session):
    world = make_world(session, households=4, buildings=2)
    a, b = world["buildings"]
    homes = {a.id: world["households"][0], b.id: world["households"][1]}
    count = 0

    def complaints(building, category, n, at):
        nonlocal count
        for _ in range(n):
            count += 1
            session.add(
                Ticket(
                    number=f"TS-{count:04d}",
                    ticket_type="complaint",
                    channel="phone",
                    household_id=homes[building.id].id,
                    project_id=world["project"].id,
                    building_id=building.id,
                    summary="卫生间漏水",
                    status="closed",
                    severity="general",
                    category=category,
                    opened_at=at,
                )
            )

    with transaction(session):
        for back, n in zip(range(12, 0, -1), QUIET, strict=True):
            complaints(a, "engineering", n, months_back(back, 10))
            complaints(b, "service", 3, months_back(back, 12))  # steady: three a month
            complaints(b, "engineering", 1, months_back(back, 14))
        # November: twelve leaks in A within one week (16-19 Nov), the usual three in B, and
        # two design complaints in each building, the first ever.
        for day in range(16, 20):
            complaints(a, "engineering", 3, dt.datetime(2026, 11, day, 4, 0, tzinfo=dt.UTC))
        complaints(b, "service", 3, dt.datetime(2026, 11, 12, 4, 0, tzinfo=dt.UTC))
        complaints(b, "engineering", 1, dt.datetime(2026, 11, 14, 4, 0, tzinfo=dt.UTC))
        for building in (a, b):
            complaints(building, "design", 2, dt.datetime(2026, 11, 5, 4, 0, tzinfo=dt.UTC))
    return world


def test_a_building_spike_is_flagged_and_a_steady_series_is_not(session, planted):
    rows = hot_spots(session, now=NOW)
    found = {(r["level"], r["building"], r["category"]): r for r in rows}
    assert set(found) == {
        ("楼栋", "2区5栋", "engineering"),
        ("项目", None, "engineering"),
        ("项目", None, "design"),
    }
    spike = rows[0]
    assert (spike["building"], spike["category"], spike["period"]) == (
        "2区5栋",
        "engineering",
        "2026-11",
    )
    assert spike["count"] == 12 and spike["baseline"] == pytest.approx(11 / 12, abs=1e-3)
    assert spike["ratio"] == pytest.approx(12 / (11 / 12), abs=0.01)
    assert spike["p_value"] < 1e-8
    assert spike["history"]["2025-11"] == 1 and len(spike["history"]) == 12
    assert "四季花城2区5栋“工程”类投诉 2026-11 共 12 件" in spike["reason"]
    assert "前 12 个月平均 0.92 件" in spike["reason"]
    # Two design complaints per building are below the minimum; four in the project, never
    # seen before, are a project-wide spike.
    design = found[("项目", None, "design")]
    assert design["count"] == 4 and design["baseline"] == 0 and design["ratio"] is None
    assert "（全项目）" in design["reason"] and "没有此类投诉" in design["reason"]
    project = found[("项目", None, "engineering")]
    assert project["count"] == 13 and project["baseline"] == pytest.approx(23 / 12, abs=1e-3)
    assert [r["p_value"] for r in rows] == sorted(r["p_value"] for r in rows)
    # Three service complaints against three a month is no spike, even with min_count 1.
    loose = hot_spots(session, now=NOW, min_count=1, alpha=0.2)
    assert not [r for r in loose if r["category"] == "service"]


def test_a_past_period_and_the_week_grain(session, planted):
    # October was quiet: nothing stands out.
    assert hot_spots(session, period="2026-10", now=NOW) == []
    weekly = hot_spots(session, grain="week", now=NOW)
    assert weekly[0]["period"] == "2026-W47" and weekly[0]["building"] == "2区5栋"
    # Of the twelve weeks before, only the week of 10 October had any (two).
    assert weekly[0]["count"] == 12 and weekly[0]["baseline"] == pytest.approx(2 / 12, abs=1e-3)
    assert weekly[0]["history"]["2026-W41"] == 2 and sum(weekly[0]["history"].values()) == 2
    assert "前 12 周平均 0.17 件" in weekly[0]["reason"]
    assert hot_spots(session, grain="week", period="2026-W46", now=NOW) == []
    assert period_start("week", "2026-w47") == dt.date(2026, 11, 16)


def test_bad_settings_are_refused(session):
    for kwargs, message in (
        ({"grain": "day"}, "不支持按“day”统计"),
        ({"period": "2026-13"}, "2026-11 这样的格式"),
        ({"grain": "week", "period": "2026-W60"}, "ISO 周"),
        ({"history": 1}, "至少为 2"),
        ({"alpha": 2.0}, "0 到 1 之间"),
    ):
        with pytest.raises(CrmError, match=message):
            hot_spots(session, **kwargs)


def test_hotspots_command(planted, run):
    result = run("analysis", "hotspots", "--period", "2026-11", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows[0]["building"] == "2区5栋" and rows[0]["count"] == 12
    # Every place is tested whatever the page: --limit/--offset pick the rows shown.
    assert len(rows) >= 2
    rest = run("analysis", "hotspots", "--period", "2026-11", "--offset", "1", "--format", "json")
    assert json.loads(rest.stdout) == rows[1:]
    first = run("analysis", "hotspots", "--period", "2026-11", "--limit", "1")
    assert first.stdout.splitlines()[-1].startswith(f"显示 1–1 条，共 {len(rows)} 条")
    table = run("analysis", "hotspots", "--period", "2026-11", "--min-count", "5")
    assert table.exit_code == 0, table.output
    assert "2区5栋" in table.output and "设计" not in table.output
    quiet = run("analysis", "hotspots", "--period", "2026-10", "--grain", "month")
    assert quiet.exit_code == 0 and "没有发现投诉热点" in quiet.output
    bad = run("analysis", "hotspots", "--grain", "week", "--period", "2026-11")
    assert bad.exit_code == 1 and "ISO 周" in bad.output
