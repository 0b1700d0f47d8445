"""The four-year revisit programme (四年之约): the due list, its exports, and visits with
rectifications and follow-ups, kept permanently."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from crm.core.db import transaction
from crm.core.models import AuditEntry, Building, Household, Member, Project, Purchase, Unit
from crm.core.privacy import seal_member_fields
from crm.plugins.campaigns.models import Rectification, Touchpoint, Visit
from crm.plugins.campaigns.revisits import due_count, due_list
from crm.plugins.satisfaction.models import Survey

PHONE = "13812345678"
# code, project, building, unit, handover date (None: not handed over), status
PORTFOLIO = [
    ("H1", "翠湖", "1栋", "0101", dt.date(2022, 12, 10), "existing"),
    ("H2", "翠湖", "2栋", "0501", dt.date(2018, 12, 31), "existing"),
    ("H2", "阳光", "A座", "1903", dt.date(2014, 12, 1), "existing"),
    ("H3", "翠湖", "1栋", "0102", dt.date(2022, 11, 30), "existing"),
    ("H4", "翠湖", "1栋", "0103", dt.date(2024, 12, 1), "existing"),
    ("H5", "翠湖", "1栋", "0104", dt.date(2026, 12, 1), "existing"),
    ("H6", "翠湖", "1栋", "0105", None, "existing"),
    ("H7", "翠湖", "1栋", "0106", dt.date(2022, 12, 5), "prospective"),
    ("H8", "翠湖", "1栋", "0107", dt.date(2023, 1, 1), "existing"),
]


@pytest.fixture
def portfolio(app):
    with app.session() as session, transaction(session):
        vault = session.info["vault"]
        projects, buildings, homes = {}, {}, {}
        for number, (code, project, building, unit, handover, status) in enumerate(PORTFOLIO):
            if project not in projects:
                projects[project] = Project(name=project)
            if (project, building) not in buildings:
                buildings[project, building] = Building(project=projects[project], name=building)
            if code not in homes:
                homes[code] = Household(code=code, name=f"{code}家", status=status)
                homes[code].members.append(Member(name=f"{code}家属", role="family"))
                homes[code].members.append(
                    Member(
                        name=f"{code}业主", role="owner", **seal_member_fields(vault, phone=PHONE)
                    )
                )
            home = homes[code]
            home.purchases.append(
                Purchase(
                    contract_no=f"C{number}",
                    unit=Unit(building=buildings[project, building], code=unit),
                    purchase_date=dt.date(2010, 1, 1),
                    amount=1_000_000,
                    handover_date=handover,
                )
            )
            session.add(home)


def _ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def _json(result):
    return json.loads(_ok(result))


def _refusal(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def test_due_list_is_every_fourth_handover_anniversary_grouped_and_sorted(app, portfolio):
    with app.session() as session:
        rows = due_list(session, "2026-12")
    assert [(r["project"], r["building"], r["unit"], r["household"]) for r in rows] == [
        ("翠湖", "1栋", "0101", "H1"),
        ("翠湖", "2栋", "0501", "H2"),
        ("阳光", "A座", "1903", "H2"),
    ]
    assert [r["anniversary"] for r in rows] == [1, 2, 3]
    assert rows[0]["handover_date"] == dt.date(2022, 12, 10)
    assert rows[0]["owner"] == "H1业主" and rows[0]["visited"] is False
    with app.session() as session:
        assert [r["household"] for r in due_list(session, "2026-11")] == ["H3"]
        assert [r["household"] for r in due_list(session, "2027-01")] == ["H8"]
        assert due_list(session, "2025-12") == []
        # The count the demo summary prints agrees with the list, month by month.
        assert [due_count(session, m) for m in ("2026-12", "2026-11", "2027-01", "2025-12")] == [
            3, 1, 1, 0
        ]  # fmt: skip


def test_phones_are_masked_for_sales_and_full_views_are_audited(app, portfolio, run):
    rows = _json(run("revisit", "due", "--month", "2026-12", "--format", "json", as_="李:sales"))
    assert {row["phone"] for row in rows} == {"138****5678"}
    with app.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "view_personal")) == 0  # fmt: skip
    rows = _json(run("revisit", "due", "--month", "2026-12", "--format", "json", as_="王:manager"))
    assert {row["phone"] for row in rows} == {PHONE}
    with app.session() as session:
        views = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "view_personal")
        ).all()
    assert len(views) == 1 and "四年之约" in views[0].detail and views[0].actor == "王"


def test_bad_month_is_refused_in_one_sentence(portfolio, run):
    assert "2026-12" in _refusal(run("revisit", "due", "--month", "2026-13"))
    assert "2026-12" in _refusal(run("revisit", "due", "--month", "十二月"))


def test_the_report_of_the_default_demo_opens_as_xlsx(run, fixed_now_text, tmp_path):
    assert run("demo", "--households", "300", "--now", fixed_now_text).exit_code == 0
    month = fixed_now_text[:7]
    xlsx = tmp_path / "report.xlsx"
    _ok(run("revisit", "report", "--month", month, "-o", str(xlsx)))
    lines = list(load_workbook(xlsx, read_only=True).active.iter_rows(values_only=True))
    assert lines[0] == ("项目", "数值") and lines[1] == ("月份", month)
    # A figure with nothing to average (no satisfaction given yet) is an empty cell.
    due = dict((*line, None)[:2] for line in lines[1:])["到期应走访（套）"]
    assert due == len(_json(run("revisit", "due", "--month", month, "--format", "json")))


def test_exports_for_the_visit_teams_open_as_csv_and_xlsx(portfolio, run, tmp_path):
    xlsx = tmp_path / "due.xlsx"
    _ok(run("revisit", "due", "--month", "2026-12", "-o", str(xlsx), as_="李:sales"))
    sheet = load_workbook(xlsx, read_only=True).active
    lines = list(sheet.iter_rows(values_only=True))
    assert lines[0][:4] == ("项目", "楼栋", "房号", "客户编号")
    assert [line[3] for line in lines[1:]] == ["H1", "H2", "H2"]
    assert lines[1][8] == "138****5678" and lines[1][9] == "否"
    csv_file = tmp_path / "due.csv"
    _ok(run("revisit", "due", "--month", "2026-12", "-o", str(csv_file)))
    text = csv_file.read_text(encoding="utf-8-sig").splitlines()
    assert text[0].startswith("项目,楼栋,房号") and len(text) == 4
    assert ".csv" in _refusal(run("revisit", "due", "--month", "2026-12", "-o", "x.pdf"))
    # Missing folders are made; the file is complete.
    deep = tmp_path / "missing" / "dir" / "due.xlsx"
    _ok(run("revisit", "due", "--month", "2026-12", "-o", str(deep)))
    assert len(list(load_workbook(deep, read_only=True).active.iter_rows())) == 4
    assert [p.name for p in deep.parent.iterdir()] == ["due.xlsx"]


@pytest.fixture
def after_the_visits(time_machine):
    """The visits and rectifications below are recorded afterwards, in January 2027 (a visit
    or a rectification dated in the future is refused)."""
    time_machine.move_to(dt.datetime(2027, 1, 31, 2, 0, tzinfo=dt.UTC), tick=True)


def test_the_visit_loop_of_the_procedure_from_appointment_to_report(
    app, portfolio, run, after_the_visits, tmp_path, monkeypatch
):
    """Steps 3.1-3.7 of the visit procedure for one household, with a nonconformity that is
    rectified, rejected by the customer, rectified again and confirmed, and another that is
    late; the satisfaction of each visit reaches satisfaction monitoring."""
    monkeypatch.setenv("COLUMNS", "1000")  # the tables' text unwrapped, one line per row
    with app.session() as session, transaction(session):
        h1 = session.scalar(select(Household).where(Household.code == "H1"))
        # The lifecycle's 四年之约 call, a month before the fourth anniversary (2022-12-10).
        session.add(Touchpoint(household_id=h1.id, purchase_id=h1.purchases[0].id,
                               kind="four_year", due_on=dt.date(2026, 11, 10), channel="phone",
                               script="请问哪天方便？"))  # fmt: skip
    # 3.1 the time and the customer's contact are agreed.
    agreed = _json(
        run("revisit", "appoint", "H1", "--month", "2026-12", "--at", "2026-12-05 10:00",
            "--contact", "H1业主（户主）", "--format", "json", as_="李:sales")
    )  # fmt: skip
    assert agreed["contact"] == "H1业主（户主）" and agreed["agreed_by"] == "李"
    [listed] = _json(run("revisit", "appointments", "--month", "2026-12", "--format", "json"))
    assert (listed["household"], listed["unit"], listed["visit"]) == ("H1", "0101", None)
    # 3.2-3.3 the visit: the customer is satisfied overall (4), yet two nonconformities.
    visit = _json(
        run("revisit", "record", "H1", "--month", "2026-12", "--date", "2026-12-05",
            "--visitor", "陈走访", "--satisfaction", "4",
            "--opinion", "意见：电梯等待时间长", "--opinion", "建议：增加充电桩",
            "--opinion", "非管理范畴：小区外道路施工", "--out-of-scope", "市政道路，已向客户解释",
            "--issue", "单元门禁损坏", "--owner", "赵工", "--due", "2026-12-20",
            "--issue", "楼道灯不亮", "--owner", "钱工", "--due", "2026-12-10",
            "--format", "json", as_="李:sales")
    )  # fmt: skip
    door, light = visit["rectifications"]
    assert [o["kind"] for o in visit["opinion_items"]] == ["opinion", "suggestion", "out_of_scope"]
    assert visit["appointed_at"] == agreed["appointed_at"] and visit["contact"] == "H1业主（户主）"
    with app.session() as session:
        point = session.scalar(select(Touchpoint))
        assert point.done_at is not None and point.outcome == "booked"
        [survey] = session.scalars(select(Survey)).all()
        assert (survey.kind, survey.csat, survey.household_id) == ("visit", 4, point.household_id)
    # A good overall score does not take the open items off the follow-up list.
    [pending] = _json(run("revisit", "follow-ups", "--format", "json"))
    assert pending["visit"] == visit["id"] and pending["open_rectifications"] == 2
    assert pending["reasons"] == ["overdue"]  # both due dates are past by the time of typing

    _ok(run("revisit", "rectify", str(door["id"]), "--measures", "更换门禁主板",
            "--date", "2026-12-15"))  # fmt: skip
    assert "待回访确认" in _refusal(
        run("revisit", "rectify", str(door["id"]), "--measures", "再修")
    )
    # 3.4-3.5 the customer is still unhappy: the rectified door goes back, the light stays open.
    unhappy = _json(
        run("revisit", "record", "H1", "--month", "2026-12", "--date", "2026-12-16",
            "--visitor", "陈走访", "--satisfaction", "2", "--follows", str(visit["id"]),
            "--format", "json")
    )  # fmt: skip
    pending = {row["visit"]: row for row in _json(run("revisit", "follow-ups", "--format", "json"))}
    assert pending[visit["id"]]["reasons"] == ["redo", "overdue"]
    assert pending[visit["id"]]["overdue"] == 2  # the light, and the door sent back past its date
    assert pending[unhappy["id"]]["reasons"] == ["unsatisfied"]
    table = _ok(run("revisit", "follow-ups"))
    assert "客户对整改仍不满意" in table and "有整改项已过期限" in table
    # The unhappy visit is a survey like any other: early warning picks the fall up.
    detected = run("satisfaction", "warnings", "--detect", "--window", "60", "--format", "json")
    warned = json.loads(_ok(detected) and detected.stdout)
    assert [(w["kind"], w["household"]) for w in warned] == [("satisfaction_drop", "H1")]
    report = _json(run("revisit", "report", "--month", "2026-12", "--format", "json"))
    assert (report["open"], report["overdue"], report["redo"]) == (2, 2, 1)

    again = _json(
        run("revisit", "rectify", str(door["id"]), "--measures", "更换读卡器",
            "--date", "2026-12-20", "--format", "json")
    )  # fmt: skip
    assert (
        again["rounds"] == 2
        and "更换门禁主板" in again["measures"]
        and "更换读卡器" in again["measures"]
    )
    _ok(
        run(
            "revisit", "rectify", str(light["id"]), "--measures", "更换灯具", "--date", "2026-12-21"
        )
    )
    # 3.6 the follow-up visit confirms both with the customer.
    _ok(run("revisit", "record", "H1", "--month", "2026-12", "--date", "2026-12-28",
            "--visitor", "陈走访", "--satisfaction", "5", "--follows", str(unhappy["id"])))  # fmt: skip
    assert _json(run("revisit", "follow-ups", "--format", "json")) == []
    history = _json(run("revisit", "show", "H1", "--format", "json"))
    assert [(v["follows"], v["satisfaction"]) for v in history] == [
        (None, 4), (visit["id"], 2), (unhappy["id"], 5)
    ]  # fmt: skip
    assert {item["state"] for item in history[0]["rectifications"]} == {"confirmed"}
    assert "客户已确认" in _ok(run("revisit", "show", "H1"))
    # 3.7 the month compiled for the general manager's office.
    report = _json(run("revisit", "report", "--month", "2026-12", "--format", "json"))
    assert {k: report[k] for k in ("due", "appointed", "visited", "follow_up_visits")} == {
        "due": 3, "appointed": 1, "visited": 1, "follow_up_visits": 2
    }  # fmt: skip
    assert report["opinions"] == {"opinion": 1, "suggestion": 1, "praise": 0, "out_of_scope": 1}
    assert (report["rectifications"], report["confirmed"], report["open"]) == (2, 2, 0)
    assert (report["satisfaction_before"], report["satisfaction_after"]) == (4.0, 5.0)
    xlsx = tmp_path / "gm" / "visits.xlsx"
    _ok(run("revisit", "report", "--month", "2026-12", "-o", str(xlsx), as_="李:sales"))
    rows = dict(list(load_workbook(xlsx, read_only=True).active.iter_rows(values_only=True))[1:])
    assert rows["已走访（套）"] == 1 and rows["意见建议：建议"] == 1 and rows["其中逾期"] == 0
    assert rows["走访率"] == "33.3%" and rows["整改回访后平均满意度"] == 5
    assert "月份" in _ok(run("revisit", "report", "--month", "2026-12"))


def test_a_visit_without_appointment_closes_the_touchpoint_and_rejects_stay_open(
    app, portfolio, run, after_the_visits
):
    with app.session() as session, transaction(session):
        h3 = session.scalar(select(Household).where(Household.code == "H3"))
        session.add(Touchpoint(household_id=h3.id, purchase_id=h3.purchases[0].id,
                               kind="four_year", due_on=dt.date(2026, 10, 30), channel="phone",
                               script="请问哪天方便？"))  # fmt: skip
    first = _json(
        run("revisit", "record", "H3", "--month", "2026-11", "--date", "2026-11-20",
            "--visitor", "陈", "--issue", "外墙渗水", "--owner", "工程部", "--due", "2026-12-31",
            "--issue", "垃圾房异味", "--owner", "保洁", "--due", "2026-12-31", "--format", "json")
    )  # fmt: skip
    with app.session() as session:
        point = session.scalar(select(Touchpoint))
        assert point.done_at is not None and "已走访" in point.note
    wall, bins = first["rectifications"]
    for item in (wall, bins):
        _ok(
            run(
                "revisit",
                "rectify",
                str(item["id"]),
                "--measures",
                "已处理",
                "--date",
                "2026-11-25",
            )
        )
    assert "--reject" in _refusal(
        run("revisit", "record", "H3", "--month", "2026-11", "--date", "2026-11-26",
            "--visitor", "陈", "--satisfaction", "5", "--reject", str(wall["id"]))
    )  # fmt: skip
    # Satisfied overall, but not with the wall: that one goes back, the other is confirmed.
    _ok(run("revisit", "record", "H3", "--month", "2026-11", "--date", "2026-11-26",
            "--visitor", "陈", "--satisfaction", "5", "--follows", str(first["id"]),
            "--reject", str(wall["id"])))  # fmt: skip
    [pending] = _json(run("revisit", "follow-ups", "--format", "json"))
    assert pending["visit"] == first["id"] and pending["reasons"] == ["redo"]
    [visit, follow_up] = _json(run("revisit", "show", "H3", "--format", "json"))
    assert [i["state"] for i in visit["rectifications"]] == ["redo", "confirmed"]
    # The follow-up was typed wrong: the customer was unhappy with both. Its correction is
    # still a follow-up of the first visit and sends both back.
    _ok(run("revisit", "record", "H3", "--month", "2026-11", "--date", "2026-11-26",
            "--visitor", "陈", "--satisfaction", "2", "--corrects", str(follow_up["id"])))  # fmt: skip
    visit, follow_up, correction = _json(run("revisit", "show", "H3", "--format", "json"))
    assert [i["state"] for i in visit["rectifications"]] == ["redo", "redo"]
    assert (correction["follows"], follow_up["superseded_by"]) == (visit["id"], correction["id"])
    report = _json(run("revisit", "report", "--month", "2026-11", "--format", "json"))
    assert (report["visited"], report["follow_up_visits"], report["redo"]) == (1, 1, 2)


def test_a_correction_is_a_new_record_and_the_old_one_stays(app, portfolio, run):
    first = _json(run("revisit", "record", "H1", "--month", "2026-12", "--visitor", "陈",
                      "--satisfaction", "1", "--format", "json"))  # fmt: skip
    _ok(run("revisit", "record", "H1", "--month", "2026-12", "--visitor", "陈",
            "--satisfaction", "4", "--corrects", str(first["id"])))  # fmt: skip
    history = _json(run("revisit", "show", "H1", "--format", "json"))
    assert [(v["satisfaction"], v["corrects"]) for v in history] == [(1, None), (4, first["id"])]
    assert [v["superseded_by"] for v in history] == [history[1]["id"], None]
    # Satisfaction monitoring keeps one survey per visit: the correction's answers replace it.
    with app.session() as session:
        [survey] = session.scalars(select(Survey)).all()
        assert (survey.csat, survey.reference) == (4, f"camp_visit:{history[1]['id']}")
    assert "已被更正" in _ok(run("revisit", "show", "H1"))
    assert _json(run("revisit", "follow-ups", "--format", "json")) == []
    # A corrected visit is followed up or corrected through its correction only.
    for link in ("--follows", "--corrects"):
        assert f"已被走访 {history[1]['id']} 更正" in _refusal(
            run("revisit", "record", "H1", "--month", "2026-12", "--visitor", "陈",
                link, str(first["id"]))
        )  # fmt: skip
    assert "delete" not in _ok(run("revisit", "--help"))


def test_bad_input_is_refused_and_nothing_is_written(app, portfolio, run, after_the_visits):
    month = ("--month", "2026-12", "--visitor", "陈")
    assert "--unit" in _refusal(run("revisit", "record", "H2", *month))
    assert "没有到期" in _refusal(run("revisit", "record", "H3", *month))
    assert "没有到期" in _refusal(run("revisit", "record", "H7", *month))
    assert "H9" in _refusal(run("revisit", "record", "H9", *month))
    assert "--owner" in _refusal(run("revisit", "record", "H1", *month, "--issue", "渗水"))
    assert "早于" in _refusal(
        run("revisit", "record", "H1", *month, "--date", "2026-12-10", "--issue", "渗水",
            "--owner", "赵工", "--due", "2026-12-01")
    )  # fmt: skip
    # Only a visit that took place can be recorded.
    assert "还没到" in _refusal(run("revisit", "record", "H1", *month, "--date", "2027-02-05"))
    assert "走访记录 99" in _refusal(run("revisit", "record", "H1", *month, "--follows", "99"))
    assert "无权" in _refusal(run("revisit", "record", "H1", *month, as_="周:analyst"))
    assert "整改项 5" in _refusal(run("revisit", "rectify", "5", "--measures", "修"))
    with app.session() as session:
        assert session.scalar(select(func.count()).select_from(Visit)) == 0
        assert session.scalar(select(func.count()).select_from(Rectification)) == 0
    visit = _json(run("revisit", "record", "H2", *month, "--unit", "1903", "--format", "json"))
    assert visit["anniversary"] == 3


def test_an_upgrade_confirms_rectifications_a_satisfied_follow_up_had_closed(
    app, portfolio, run, after_the_visits
):
    """Before camp0004 a follow-up visit settled its visit; the upgrade counts a rectification
    done before a satisfied follow-up as confirmed by it, and leaves the rest open."""
    from alembic import command
    from alembic.config import Config

    from crm.core.migrate import upgrade

    first = _json(
        run("revisit", "record", "H1", "--month", "2026-12", "--date", "2026-12-05",
            "--visitor", "陈", "--issue", "门禁损坏", "--owner", "赵工", "--due", "2026-12-20",
            "--issue", "灯不亮", "--owner", "钱工", "--due", "2026-12-20", "--format", "json")
    )  # fmt: skip
    door, light = first["rectifications"]
    _ok(run("revisit", "rectify", str(door["id"]), "--measures", "换主板", "--date", "2026-12-10"))
    chain = next(c for c in app.migration_chains() if c.name == "campaigns")
    try:
        with app.engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(chain.location))
            config.attributes.update(version_table=chain.version_table, connection=connection)
            command.downgrade(config, "camp0003")
        # The follow-up as the old code stored it: a visit naming the one it follows.
        with app.engine.begin() as connection:
            connection.execute(
                Visit.__table__.insert().values(
                    household_id=select(Household.id).where(Household.code == "H1").scalar_subquery(),
                    purchase_id=select(Visit.purchase_id).where(Visit.id == first["id"]).scalar_subquery(),
                    due_month="2026-12", anniversary=1, visited_on=dt.date(2026, 12, 12),
                    visitor="陈", satisfaction=5, follows_visit_id=first["id"], recorded_by="陈",
                    created_at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
                    updated_at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
                )
            )  # fmt: skip
    finally:
        upgrade(app.engine, app.migration_chains())
    [visit, _] = _json(run("revisit", "show", "H1", "--format", "json"))
    states = {
        i["id"]: (i["state"], i["rounds"], i["confirmed_on"]) for i in visit["rectifications"]
    }
    assert states == {
        door["id"]: ("confirmed", 1, "2026-12-12"),
        light["id"]: ("overdue", 0, None),
    }
    [pending] = _json(run("revisit", "follow-ups", "--format", "json"))
    assert pending["visit"] == first["id"] and pending["open_rectifications"] == 1
