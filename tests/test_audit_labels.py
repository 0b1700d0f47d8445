"""The audit log in Chinese (crm.core.auditlabels): every table, column and action that can reach
the log has a label, from the core or from the plugin that owns it (`audit_vocabulary`), and an
entry reads with labels for codes and local times; JSON keeps what is stored."""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path

import pytest

import crm
import crm.plugins.analysis.models
import crm.plugins.campaigns.models
import crm.plugins.coordination.models
import crm.plugins.profitability.models
import crm.plugins.satisfaction.models
import crm.plugins.service.models
from crm.core import auditlabels
from crm.core.models import Audited, Base
from crm.core.plugins import make_plugin_manager
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.service.rules import CHECK_FINDINGS, GROUP_EVENTS


@pytest.fixture(scope="module")
def labels() -> auditlabels.AuditLabels:
    return auditlabels.collect(make_plugin_manager(BUILTIN_PLUGINS))


def test_every_table_and_every_audited_column_has_a_label(labels):
    unnamed = [table for table in Base.metadata.tables if table not in labels.entities]
    assert not unnamed, f"tables without a Chinese name: {unnamed}"
    missing = []
    for mapper in Base.registry.mappers:
        if not issubclass(mapper.class_, Audited):
            continue
        table = mapper.class_.__tablename__
        for attr in mapper.column_attrs:
            if attr.key in ("created_at", "updated_at"):  # never logged (crm.core.audit)
                continue
            if labels.field(table, attr.key) == attr.key:
                missing.append(f"{table}.{attr.key}")
    assert not missing, f"audited columns without a Chinese name: {missing}"


def _recorded_actions() -> tuple[set[str], set[str], set[str]]:
    """The actions, entities and change keys written literally anywhere in crm: calls of
    record()/audit.record() and rows inserted into the log as dicts."""
    actions, entities, keys = set(), set(), set()
    for path in Path(crm.__file__).parent.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name != "record" or len(node.args) < 3:
                    continue
                first = node.args[0]
                if "session" not in (getattr(first, "id", None) or getattr(first, "attr", "")):
                    continue  # another function called record (the demo's has no session)
                action, entity = node.args[1], node.args[2]
                if isinstance(action, ast.Constant) and isinstance(action.value, str):
                    actions.add(action.value)
                if isinstance(entity, ast.Constant) and isinstance(entity.value, str):
                    entities.add(entity.value)
                changes = [kw.value for kw in node.keywords if kw.arg == "changes"]
                changes += node.args[4:5]
                for given in changes:
                    if isinstance(given, ast.Dict):
                        keys.update(k.value for k in given.keys if isinstance(k, ast.Constant))
            elif isinstance(node, ast.Dict):
                fields = {
                    k.value: v for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant)
                }  # fmt: skip
                action = fields.get("action")
                if "entity" in fields and isinstance(action, ast.Constant):
                    actions.add(action.value)
    return actions, entities, keys


def test_every_action_entity_and_change_key_written_to_the_log_has_a_label(labels):
    actions, entities, keys = _recorded_actions()
    assert {"create", "update", "view_personal", "escalate", "claim"} <= actions
    # built with an f-string: the SLA check's findings and a group complaint's events
    actions |= {f"sla_{kind}" for kind in CHECK_FINDINGS} | {f"group_{e}" for e in GROUP_EVENTS}
    assert not [a for a in actions if a not in labels.actions], "actions without a label"
    assert not [e for e in entities if e not in labels.entities], "entities without a label"
    unnamed = [k for k in keys if labels.field("", k) == k]
    assert not unnamed, f"change keys without a label: {unnamed}"


def test_an_entry_reads_with_labels_and_local_times(labels):
    text = labels.changes(
        "svc_work_orders",
        "12",
        {
            "status": ["open", "done"],
            "kind": [None, "remedial"],
            "due_at": [None, "2026-12-02T16:20:00+00:00"],
            "accepted": [None, True],
            "description": [None, "修补防水层"],
        },
    )
    assert text == (
        "状态：处理中 → 已完成；派工类型：空 → 补救措施；时限：空 → 2026-12-03 00:20；"
        "客户接受：空 → 是；内容：空 → 修补防水层"
    )
    # the same column name reads by its own table's vocabulary
    assert labels.changes("svc_tickets", "3", {"status": ["accepted", "confirmed"]}) == (
        "步骤：受理 → 确认"
    )
    # a setting's value by the setting's key, several codes at once
    assert labels.changes(
        "settings",
        "profitability.plans.compensation.suits",
        {"value": ["broken_promise,repeat_complaint", "broken_promise"]},
    ) == ("值：承诺未兑现、重复投诉 → 承诺未兑现")
    # de-duplication keys stay out of what people read; demo counts name their tables
    assert labels.changes("sat_feedback", "1", {"key": [None, "satisfaction_drop:1:2"]}) == ""
    assert labels.changes("svc_tickets", None, {"svc_staff": 29, "svc_tickets": 48}) == (
        "员工：29；工单：48"
    )


def test_the_log_reads_in_chinese_and_its_json_keeps_the_codes(run, app, monkeypatch):
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    assert run("team", "add", "greening", "--name", "绿化组", "--kind", "外包方").exit_code == 0
    assert run("sla", "set", "complaint", "general", "--response", "15").exit_code == 0
    table = run("audit", "list", "--entity", "svc_sla_policies").output
    assert "修改" in table and "服务时限标准" in table and "首次响应（分钟）：10 → 15" in table
    assert "svc_sla_policies" not in table and "response_minutes" not in table
    rows = json.loads(run("audit", "list", "--format", "json").stdout)
    policy = next(row for row in rows if row["entity"] == "svc_sla_policies")
    assert policy["action"] == "update" and policy["action_label"] == "修改"
    assert policy["entity_label"] == "服务时限标准" and policy["role_label"] == "系统管理员"
    assert policy["changes"] == "response_minutes: 10 → 15"
    assert policy["changes_label"] == "首次响应（分钟）：10 → 15"
    team = next(row for row in rows if row["entity"] == "svc_teams")
    assert "类型：空 → 外包方" in team["changes_label"]
    at = dt.datetime.fromisoformat(team["at"])
    assert at.utcoffset() == dt.timedelta(0)  # JSON: the stored UTC time
