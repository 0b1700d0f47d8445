"""The core: initialisation, the key check, sessions carrying the user, the audit hook."""

import pytest
from sqlalchemy import select

from crm.core.app import App
from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import AuditEntry, Household
from crm.core.security import User


def test_init_is_idempotent_and_pins_the_key(app):
    assert app.init() == app.init()


def test_uninitialised_database_says_run_init(tmp_path):
    app = App(f"sqlite:///{tmp_path}/empty.db", user=User("x", "admin"), pm=None, builtins=())
    with pytest.raises(CrmError, match="crm init"):
        app.session()


def test_wrong_key_is_refused(app, monkeypatch, db_url):
    from crm.core.security import new_key

    monkeypatch.setenv("CRM_SECRET_KEY", new_key())
    other = App(db_url, user=User("x", "admin"), builtins=())
    with pytest.raises(CrmError, match="密钥"):
        other.session()
    other.dispose()


def test_changes_are_audited_with_old_and_new(app):
    with app.session() as session, transaction(session):
        session.add(Household(code="H1", name="张伟", status="prospective"))
    with app.session() as session, transaction(session):
        household = session.scalar(select(Household).where(Household.code == "H1"))
        household.name = "张伟家"
    with app.session() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "households").order_by(AuditEntry.id)
        ).all()
    assert [e.action for e in entries] == ["create", "update"]
    assert entries[1].changes == {"name": ["张伟", "张伟家"]}
    assert entries[1].actor == "测试管理员" and entries[1].role == "admin"


def test_times_are_shown_in_the_business_zone(monkeypatch):
    import datetime as dt

    from crm.core.render import cell_text

    moment = dt.datetime(2026, 4, 28, 0, 5, tzinfo=dt.UTC)
    assert cell_text(moment) == "2026-04-28 08:05"  # Asia/Shanghai by default
    monkeypatch.setenv("CRM_TIMEZONE", "UTC")
    assert cell_text(moment) == "2026-04-28 00:05"
    monkeypatch.setenv("CRM_TIMEZONE", "Mars/Olympus")
    with pytest.raises(CrmError, match="CRM_TIMEZONE"):
        cell_text(moment)


def test_add_months_keeps_the_day_or_falls_back_to_the_month_end():
    import datetime as dt

    from crm.core.clock import add_months

    assert add_months(dt.date(2021, 4, 28), 60) == dt.date(2026, 4, 28)
    assert add_months(dt.date(2026, 6, 15), -12) == dt.date(2025, 6, 15)
    assert add_months(dt.date(2024, 1, 31), 1) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2024, 3, 31), -1) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2025, 12, 31), 2) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2025, 11, 30), 2) == dt.date(2026, 1, 30)
