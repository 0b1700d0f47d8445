"""`crm audit list`: every shape of recorded changes reads as one line of text."""

from __future__ import annotations

import json

from crm.core import audit
from crm.core.db import transaction

MANAGER = "王经理:manager"


def test_audit_list_shows_every_shape_of_changes(app, run):
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


def test_audit_list_on_a_fresh_demo(run, fixed_now_text):
    built = run("demo", "--households", "150", "--now", fixed_now_text)
    assert built.exit_code == 0, built.output
    result = run("audit", "list", "--limit", "1000", as_=MANAGER)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "households: 0 → 150" in result.stdout
