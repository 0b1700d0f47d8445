"""KPIs per project, team, category and month, aggregated in SQL from surveys and (through the
ticket_statistics hook) from service tickets; the report command and its PNG charts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import delete, event

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Household, Project
from crm.plugins.satisfaction.kpis import kpi_report
from crm.plugins.satisfaction.models import Survey, SurveyAspect
from crm.plugins.service.models import Team, Ticket

UTC = dt.UTC


def at(day: int, hour: int = 2, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC)


def ticket(number, household, project, team, category, opened, status, **times) -> Ticket:
    """A ticket row as service handling leaves it; `times` are minutes after opening."""
    minutes = {k: opened + dt.timedelta(minutes=v) for k, v in times.items() if k != "breached"}
    return Ticket(
        number=number,
        ticket_type="complaint",
        channel="phone",
        household=household,
        project_id=project.id,
        summary="测试工单",
        status=status,
        category=category,
        team=team,
        opened_at=opened,
        resolve_breached=times.get("breached", False),
        **minutes,
    )


def survey(household, project, team, category, taken, csat, nps, aspects=()) -> Survey:
    return Survey(
        kind="revisit",
        household_id=household.id,
        project_id=project.id,
        team=team,
        category=category,
        taken_at=taken,
        csat=csat,
        nps=nps,
        gap_total=sum(x - e for e, x in aspects) if aspects else None,
        aspect_count=len(aspects),
        aspects=[
            SurveyAspect(household_id=household.id, aspect=f"方面{i}", expectation=e,
                         experience=x, gap=x - e)
            for i, (e, x) in enumerate(aspects)
        ],
    )  # fmt: skip


@pytest.fixture
def data(app):
    """Garden: four March tickets by the technical team; Park: one ticket opened on 31 March
    at 20:00 UTC, which is 1 April in Shanghai."""
    with app.session() as session, transaction(session):
        garden, park = Project(name="城市花园"), Project(name="四季花城")
        tech = Team(code="TECH", name="技术班", kind="technical")
        clean = Team(code="CLEAN", name="保洁班", kind="cleaning")
        zhang = Household(code="H1", name="张伟家", status="existing", project=garden)
        li = Household(code="H2", name="李娜家", status="existing", project=park)
        session.add_all([garden, park, tech, clean, zhang, li])
        session.flush()
        session.add_all(
            [
                ticket("T1", zhang, garden, tech, "engineering", at(2), "revisited",
                       first_response_at=10, closed_at=60, revisited_at=90),
                ticket("T2", zhang, garden, tech, "engineering", at(3), "closed",
                       first_response_at=30, closed_at=180, breached=True),
                ticket("T3", zhang, garden, tech, "service", at(4), "investigating",
                       first_response_at=20),
                ticket("T4", zhang, garden, tech, "service", at(5), "completed",
                       first_response_at=40, closed_at=120, revisited_at=200),
                ticket("T5", li, park, clean, "service", at(31, 20), "closed",
                       first_response_at=5, closed_at=25),
            ]
        )  # fmt: skip
        session.add_all(
            [
                survey(zhang, garden, "TECH", "engineering", at(2, 5), 5, 10, [(8, 9), (9, 6)]),
                survey(zhang, garden, "TECH", "engineering", at(3, 5), 4, 9),
                survey(zhang, garden, "TECH", "service", at(6), 2, 3, [(7, 4)]),
                survey(li, park, "CLEAN", "service", at(1, 3, month=4), 5, 8, [(6, 8)]),
            ]
        )


def by_label(rows: list[dict]) -> dict[str, dict]:
    return {row["label"]: row for row in rows}


def test_kpis_by_project_come_from_surveys_and_tickets(app, data):
    with app.session() as session:
        rows = by_label(kpi_report(session, "project"))
    garden = rows["城市花园"]
    assert garden["surveys"] == 3
    assert garden["satisfaction_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert garden["nps"] == pytest.approx(100 * (2 - 1) / 3, abs=0.01)
    assert garden["mean_gap"] == pytest.approx((1 - 3 - 3) / 3, abs=0.01)
    assert (garden["tickets"], garden["closed"]) == (4, 3)
    assert garden["timeliness_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert garden["closure_rate"] == pytest.approx(3 / 4, abs=1e-4)
    assert garden["revisit_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert garden["mean_reply_minutes"] == pytest.approx(25, abs=0.01)
    assert garden["mean_close_minutes"] == pytest.approx(120, abs=0.01)
    park = rows["四季花城"]
    assert (park["surveys"], park["satisfaction_rate"], park["nps"], park["mean_gap"]) == (
        1,
        1.0,
        0.0,
        2.0,
    )
    assert (park["tickets"], park["timeliness_rate"], park["revisit_rate"]) == (1, 1.0, 0.0)
    assert park["mean_close_minutes"] == pytest.approx(25, abs=0.01)


def test_months_are_the_business_zones(app, data):
    with app.session() as session:
        rows = by_label(kpi_report(session, "month"))
    assert list(rows) == ["2026-03", "2026-04"]
    assert (rows["2026-03"]["tickets"], rows["2026-04"]["tickets"]) == (4, 1)
    assert (rows["2026-03"]["surveys"], rows["2026-04"]["surveys"]) == (3, 1)


def test_kpis_by_team_and_category(app, data):
    with app.session() as session:
        teams = {row["key"]: row for row in kpi_report(session, "team")}
        categories = by_label(kpi_report(session, "category"))
    assert teams["TECH"]["label"] == "技术班" and teams["TECH"]["tickets"] == 4
    assert teams["TECH"]["surveys"] == 3 and teams["CLEAN"]["surveys"] == 1
    assert categories["工程"]["tickets"] == 2 and categories["工程"]["timeliness_rate"] == 0.5
    assert categories["服务"]["tickets"] == 3 and categories["服务"]["surveys"] == 2
    assert categories["服务"]["satisfaction_rate"] == 0.5


def test_since_and_until_limit_both_sources(app, data):
    with app.session() as session:
        rows = by_label(kpi_report(session, "project", since=at(3), until=at(5)))
        with pytest.raises(CrmError, match="早于"):
            kpi_report(session, "project", since=at(5), until=at(3))
        with pytest.raises(CrmError, match="分组"):
            kpi_report(session, "household")
    assert list(rows) == ["城市花园"]
    assert (rows["城市花园"]["tickets"], rows["城市花园"]["surveys"]) == (2, 1)


def test_every_kpi_query_aggregates_in_the_database(app, data):
    statements = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.session() as session:
        event.listen(app.engine, "before_cursor_execute", seen)
        try:
            for group_by in ("project", "team", "category", "month"):
                kpi_report(session, group_by)
        finally:
            event.remove(app.engine, "before_cursor_execute", seen)
    reading = [s for s in statements if "svc_tickets" in s or "sat_surveys" in s]
    assert len(reading) >= 8
    assert all("GROUP BY" in s for s in reading), reading


def test_without_the_service_plugin_only_survey_kpis_remain(app, data):
    with app.session() as session:
        session.info["pm"] = None
        rows = by_label(kpi_report(session, "project"))
    assert rows["城市花园"]["surveys"] == 3
    assert rows["城市花园"]["tickets"] == 0 and rows["城市花园"]["closure_rate"] is None


def test_report_command_as_json_table_and_charts(run, app, data, tmp_path):
    result = run("satisfaction", "report", "--by", "month", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["key"] for row in rows] == ["2026-03", "2026-04"]
    assert rows[0]["closure_rate"] == 0.75
    table = run("satisfaction", "report", "--since", "2026-03-01", "--until", "2026-03-31",
                "--chart", str(tmp_path / "charts"))  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "城市花园" in table.stdout and "75.0%" in table.stdout
    for name in ("trend.png", "projects.png"):
        png = tmp_path / "charts" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"已生成图表：{png}" in table.stderr


def test_report_command_refuses_a_bad_date(run, data):
    result = run("satisfaction", "report", "--since", "2026-13-01")
    assert result.exit_code != 0
    assert "不是有效日期" in result.output and "Traceback" not in result.output


def test_charts_on_a_machine_without_a_chinese_font_need_no_note(monkeypatch, tmp_path):
    from crm.core import charts as shared
    from crm.plugins.satisfaction import charts

    monkeypatch.setattr(shared, "cjk_font", lambda: None)
    rows = [{"label": "2026-03", "satisfaction_rate": 0.5, "nps": 10.0, "closure_rate": None}]
    paths, note = charts.write_charts(rows, [], tmp_path)
    assert [p.name for p in paths] == ["trend.png", "projects.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert note is None  # the package's own font draws every character
    # A character no font has is named, not left to show as a box.
    paths, note = charts.write_charts([], [{"label": "𠀀园", "satisfaction_rate": 0.5}], tmp_path)
    assert "𠀀" in note and "fonts-noto-cjk" in note


def test_project_names_resolve_for_rows_with_only_tickets(app, data):
    with app.session() as session, transaction(session):
        session.execute(delete(SurveyAspect))
        session.execute(delete(Survey))
    with app.session() as session:
        rows = by_label(kpi_report(session, "project"))
    assert set(rows) == {"城市花园", "四季花城"}
    assert rows["城市花园"]["surveys"] == 0 and rows["城市花园"]["satisfaction_rate"] is None
