"""`crm audit list`: every shape of recorded changes reads as one line of text, control
characters are shown escaped, and actor names cannot forge lines or take the system's name."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from crm.core import audit
from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import AuditEntry
from crm.core.security import User, parse_user

MANAGER = "王经理:manager"


def test_audit_list_shows_every_shape_of_changes(app, run, monkeypatch):
    # The table's whole text on one line per row: a 120-column terminal would wrap it.
    monkeypatch.setenv("COLUMNS", "1000")
    numbers = [f"TS20261202-{n:04d}" for n in range(1, 13)]
    with app.session() as session, transaction(session):
        audit.record(session, "update", "households", "e1", changes={"name": ["张伟", "张伟家"]})
        audit.record(session, "create", "households", "e2", changes={"code": [None, "H100"]})
        audit.record(session, "group", "svc_group_complaints", "e3", changes={"tickets": numbers})
        audit.record(
            session, "escalate", "svc_tickets", "e4", changes={"rule": "major", "level": 3}
        )
        audit.record(
            session,
            "hand",
            "sat_feedback",
            "e5",
            changes={"status": ["pending", "handed"], "records": 12},
        )
        audit.record(session, "plan", "svc_tickets", "e6", changes={"tickets": [], "to": None})
    result = run("audit", "list", "--format", "json", as_=MANAGER)
    assert result.exit_code == 0, result.output
    shown = {row["entity_id"]: row["changes"] for row in json.loads(result.stdout)}
    assert shown["e1"] == "name: 张伟 → 张伟家"
    assert shown["e2"] == "code: 空 → H100"
    assert shown["e3"] == "tickets: " + "、".join(numbers[:5]) + " 等 12 项"
    assert shown["e4"] == "rule: major；level: 3"
    assert shown["e5"] == "status: pending → handed；records: 12"
    assert shown["e6"] == "tickets: 无；to: 空"
    table = run("audit", "list", as_=MANAGER)
    assert table.exit_code == 0 and "等 12 项" in table.stdout


def test_audit_list_on_a_fresh_demo(run, fixed_now_text, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # each row's changes on one line, unwrapped
    built = run("demo", "--households", "150", "--now", fixed_now_text)
    assert built.exit_code == 0, built.output
    result = run("audit", "list", "--limit", "1000", as_=MANAGER)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "生成演示数据" in result.stdout
    assert "户数：0 → 150" in result.stdout


@pytest.mark.parametrize(
    "name",
    [
        "张三\n2026-12-01 09:00  system  admin",  # a newline forges a line of the listing
        "张三\x1b[2K\x1b[1A",  # ESC: clear the line, move up
        "张三\r",
        "张三\x85",  # C1 next line
        "\u202eadmin",  # right-to-left override
        "张\u2066三",  # bidi isolate
        "张\u200b三",  # zero-width space
        "张三\u2028",  # line separator
        "张\udcff三",  # an undecodable byte from the environment
    ],
)
def test_names_with_control_characters_are_refused(name):
    with pytest.raises(CrmError, match="控制字符"):
        parse_user(f"{name}:admin")


@pytest.mark.parametrize("name", ["system", "System", " SYSTEM ", "ｓｙｓｔｅｍ", "系统"])
def test_the_system_name_is_reserved(name):
    with pytest.raises(CrmError, match="保留"):
        parse_user(f"{name}:admin")


def test_ordinary_names_still_work():
    assert parse_user("王经理:manager") == User("王经理", "manager")
    assert parse_user("system-ops:admin").name == "system-ops"
    assert parse_user("O'Brien Zhang:sales").name == "O'Brien Zhang"
    with pytest.raises(CrmError, match="太长"):
        parse_user("长" * 101 + ":sales")


def test_the_cli_refuses_forged_names_and_writes_nothing(app, run, monkeypatch):
    with app.session() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    forged = run("audit", "list", as_="a\nb:admin")
    assert forged.exit_code != 0 and "控制字符" in forged.stderr
    assert "Traceback" not in forged.output
    from click.testing import CliRunner

    from crm.cli import cli

    monkeypatch.setenv("CRM_USER", "system:admin")
    result = CliRunner().invoke(cli, ["household", "add", "H1", "--name", "张伟"])
    assert result.exit_code != 0 and "保留" in result.stderr
    with app.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_audit_list_escapes_control_characters_of_old_rows(app, run):
    forged = "张三\n2026-12-01 09:00:00  system  admin  delete"
    with app.session() as session, transaction(session):
        # Written as an older crm would have: names were not checked then.
        session.info["user"] = User(forged, "admin")
        audit.record(
            session, "update", "households", "e\x1b[31m1", changes={"name": ["a\rb", "\u202ec"]}
        )
    for fmt in ("table", "csv", "json"):
        result = run("audit", "list", "--format", fmt, as_=MANAGER)
        assert result.exit_code == 0, result.output
        assert not any(ch in result.stdout for ch in "\x1b\r\u202e")
        if fmt != "json":  # JSON writes the backslash of the escape as \\
            assert "张三\\n2026-12-01" in result.stdout
        assert not any(
            line.startswith("2026-12-01 09:00:00  system") for line in result.stdout.splitlines()
        )
    shown = json.loads(run("audit", "list", "--format", "json", as_=MANAGER).stdout)[0]
    assert shown["actor"] == forged.replace("\n", "\\n")
    assert shown["entity_id"] == "e\\x1b[31m1"
    assert shown["changes"] == "name: a\\rb → \\u202ec"
