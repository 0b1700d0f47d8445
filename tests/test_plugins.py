"""Plugins: a temporary plugin contributes a card section, CRM_DISABLE_PLUGINS switches a
built-in off, and `crm plugins` lists the built-ins with their hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crm import hookimpl
from crm.core.card import CardSection, build_card
from crm.core.db import transaction
from crm.core.models import Household
from crm.core.plugins import make_plugin_manager
from crm.plugins import BUILTIN_PLUGINS

BUILTIN_NAMES = [dotted.rsplit(".", 1)[-1] for dotted in BUILTIN_PLUGINS]


class VisitPlanner:
    """A test plugin: one section naming the household it was given."""

    @hookimpl
    def tracking_card_sections(self, household):
        return [CardSection("四年之约", lines=[("下次走访", f"{household.code} 待安排")])]


@pytest.fixture
def planner(app):
    plugin = VisitPlanner()
    app.pm.register(plugin, name="visit-planner")
    yield plugin
    app.pm.unregister(plugin)


@pytest.fixture
def household(app):
    with app.session() as session, transaction(session):
        session.add(Household(code="H001", name="张伟家"))


def test_a_registered_plugin_contributes_a_card_section(app, household, planner):
    with app.session() as session:
        card = build_card(session, "H001")
    titles = [section.title for section in card.sections]
    assert titles[-3:] == ["购买与推荐概况", "服务概况", "四年之约"]
    assert card.sections[-1].lines == [("下次走访", "H001 待安排")]
    assert "【四年之约】" in card.render()
    assert card.as_dict()["sections"][-1]["lines"] == {"下次走访": "H001 待安排"}


def test_without_the_plugin_the_section_is_gone(app, household):
    with app.session() as session:
        titles = [section.title for section in build_card(session, "H001").sections]
    assert "四年之约" not in titles


def test_disabled_builtin_contributes_nothing(app, household, monkeypatch):
    monkeypatch.setenv("CRM_DISABLE_PLUGINS", "analysis, coordination")
    pm = make_plugin_manager(BUILTIN_PLUGINS)
    loaded = {pm.get_name(plugin) for plugin in pm.get_plugins()}
    assert {"analysis", "coordination"}.isdisjoint(loaded)
    assert {"service", "satisfaction", "profitability"} <= loaded
    with app.session() as session:
        session.info["pm"] = pm
        titles = [section.title for section in build_card(session, "H001").sections]
    assert "购买与推荐概况" not in titles and "服务概况" in titles


def _plugins_json(env: dict[str, str]) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", "from crm.cli import main; main()", "plugins", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout)


def test_plugins_command_lists_the_builtins_with_their_hooks():
    rows = {row["name"]: row for row in _plugins_json({"CRM_DISABLE_PLUGINS": ""})}
    assert set(BUILTIN_NAMES) <= set(rows)
    for name in BUILTIN_NAMES:
        assert rows[name]["source"] == "内置"
    for name in ("analysis", "service"):
        assert "tracking_card_sections" in rows[name]["hooks"].split(", ")


def test_plugins_command_obeys_crm_disable_plugins():
    names = {row["name"] for row in _plugins_json({"CRM_DISABLE_PLUGINS": "service"})}
    assert "service" not in names
    assert set(BUILTIN_NAMES) - {"service"} <= names
