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
from crm.plugins.campaigns.models import Rectification, Visit
from crm.plugins.campaigns.revisits import due_count, due_list

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


def test_a_visit_with_nonconformities_is_rectified_and_followed_up_until_satisfied(
    app, portfolio, run, after_the_visits
):
    visit = _json(
        run(
            "revisit", "record", "H1", "--month", "2026-12", "--date", "2026-12-05",
            "--visitor", "陈走访", "--opinions", "电梯等待时间长", "--out-of-scope",
            "小区外道路属市政", "--issue", "单元门禁损坏", "--owner", "赵工",
            "--due", "2026-12-20", "--format", "json", as_="李:sales",
        )
    )  # fmt: skip
    assert visit["anniversary"] == 1 and visit["satisfaction"] is None
    [item] = visit["rectifications"]
    assert (item["owner"], item["due_on"], item["done_on"]) == ("赵工", "2026-12-20", None)
    rows = _json(run("revisit", "due", "--month", "2026-12", "--format", "json"))
    assert [row["visited"] for row in rows] == [True, False, False]

    [pending] = _json(run("revisit", "follow-ups", "--format", "json"))
    assert pending["visit"] == visit["id"] and pending["open_rectifications"] == 1

    done = _json(
        run("revisit", "rectify", str(item["id"]), "--measures", "更换门禁主板",
            "--date", "2026-12-15", "--format", "json")
    )  # fmt: skip
    assert done["done_on"] == "2026-12-15"
    assert "已于" in _refusal(run("revisit", "rectify", str(item["id"]), "--measures", "再修"))

    unhappy = _json(
        run("revisit", "record", "H1", "--month", "2026-12", "--date", "2026-12-16",
            "--visitor", "陈走访", "--satisfaction", "2", "--follows", str(visit["id"]),
            "--issue", "门禁仍偶尔失灵", "--owner", "赵工", "--due", "2026-12-30",
            "--format", "json")
    )  # fmt: skip
    [pending] = _json(run("revisit", "follow-ups", "--format", "json"))
    assert pending["visit"] == unhappy["id"] and pending["satisfaction"] == 2

    _ok(run("revisit", "record", "H1", "--month", "2026-12", "--date", "2026-12-31",
            "--visitor", "陈走访", "--satisfaction", "5", "--follows", str(unhappy["id"])))  # fmt: skip
    assert _json(run("revisit", "follow-ups", "--format", "json")) == []

    history = _json(run("revisit", "show", "H1", "--format", "json"))
    assert [(v["follows"], v["satisfaction"]) for v in history] == [
        (None, None),
        (visit["id"], 2),
        (unhappy["id"], 5),
    ]
    assert "更换门禁主板" in _ok(run("revisit", "show", "H1"))


def test_a_correction_is_a_new_record_and_the_old_one_stays(app, portfolio, run):
    first = _json(run("revisit", "record", "H1", "--month", "2026-12", "--visitor", "陈",
                      "--satisfaction", "1", "--format", "json"))  # fmt: skip
    _ok(run("revisit", "record", "H1", "--month", "2026-12", "--visitor", "陈",
            "--satisfaction", "4", "--corrects", str(first["id"])))  # fmt: skip
    history = _json(run("revisit", "show", "H1", "--format", "json"))
    assert [(v["satisfaction"], v["corrects"]) for v in history] == [(1, None), (4, first["id"])]
    assert _json(run("revisit", "follow-ups", "--format", "json")) == []
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
