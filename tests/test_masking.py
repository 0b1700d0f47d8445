"""Personal data on the tracking card: masked for sales, agents and analysts; in full for
managers and administrators, each full view written to the audit log."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from crm.core.card import build_card
from crm.core.db import transaction
from crm.core.identity import id_check_digit
from crm.core.models import AuditEntry, Household, Member
from crm.core.privacy import seal_member_fields
from crm.core.security import User

PHONE = "13812345678"


def _id_ending_1234() -> str:
    """A valid ID number from Beijing 东城 whose last four characters are 1234."""
    day = dt.date(1980, 1, 1)
    while True:
        first17 = f"110105{day:%Y%m%d}123"
        if id_check_digit(first17) == "4":
            return first17 + "4"
        day += dt.timedelta(days=1)


ID_NUMBER = _id_ending_1234()


@pytest.fixture
def household(app):
    with app.session() as session, transaction(session):
        vault = session.info["vault"]
        home = Household(code="H001", name="张伟家", status="existing")
        home.members.append(
            Member(
                name="张伟",
                role="owner",
                **seal_member_fields(vault, phone=PHONE, id_number=ID_NUMBER),
            )
        )
        home.members.append(Member(name="张小明", role="family"))  # nothing personal to show
        session.add(home)
    with app.session() as session:
        return session.scalar(select(Member.id).where(Member.name == "张伟"))


def _views(app) -> list[AuditEntry]:
    with app.session() as session:
        return session.scalars(
            select(AuditEntry).where(AuditEntry.action == "view_personal").order_by(AuditEntry.id)
        ).all()


def _owner_row(result) -> dict:
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    members = next(s for s in card["sections"] if s["title"] == "家庭成员")["rows"]
    return next(row for row in members if row["姓名"] == "张伟")


@pytest.mark.parametrize("role", ["sales", "agent", "analyst"])
def test_masked_roles_see_masked_values_and_write_no_audit(app, household, run, role):
    row = _owner_row(run("household", "show", "H001", "--format", "json", as_=f"某人:{role}"))
    assert row["手机"] == "138****5678"
    assert row["身份证号"] == "110105********1234"
    table = run("household", "show", "H001", as_=f"某人:{role}")
    assert "138****5678" in table.output and PHONE not in table.output
    assert ID_NUMBER not in table.output
    assert _views(app) == []


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_full_roles_see_full_values_and_each_view_is_audited(app, household, run, role):
    for expected in (1, 2):
        row = _owner_row(run("household", "show", "H001", "--format", "json", as_=f"王经理:{role}"))
        assert (row["手机"], row["身份证号"]) == (PHONE, ID_NUMBER)
        views = _views(app)
        assert len(views) == expected
    entry = views[-1]
    assert (entry.actor, entry.role, entry.entity) == ("王经理", role, "members")
    # Only the member whose data was shown is named; 张小明 has none.
    assert entry.entity_id == str(household)
    assert "H001" in entry.detail


def test_the_library_leaves_the_commit_to_the_caller(app, household):
    with app.session() as session:
        session.info["user"] = User("王经理", "manager")
        build_card(session, "H001")
        session.rollback()
    assert _views(app) == []
    with app.session() as session, transaction(session):
        session.info["user"] = User("王经理", "manager")
        build_card(session, "H001")
    assert len(_views(app)) == 1


def test_listing_and_search_disclose_nothing(app, household, run):
    for args in (("list",), ("search", PHONE), ("search", "--id-number", ID_NUMBER)):
        result = run("household", *args, "--format", "json", as_="王经理:manager")
        assert result.exit_code == 0, result.output
        assert [row["code"] for row in json.loads(result.output)] == ["H001"]
        assert PHONE not in result.output and ID_NUMBER not in result.output
    assert _views(app) == []


def test_personal_data_is_stored_encrypted(app, household):
    with app.session() as session:
        stored = session.execute(select(Member.phone_enc, Member.id_number_enc)).first()
        assert PHONE not in stored.phone_enc and ID_NUMBER not in stored.id_number_enc
        assert session.scalar(select(func.count()).select_from(Member)) == 2
