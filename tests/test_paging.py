"""Every listing is a page: it takes --limit/--offset (and --since/--until where its rows have
dates) and says how much of how many it shows, under a table or on stderr beside JSON/CSV."""

from __future__ import annotations

import json

import click
import pytest
from sqlalchemy import select

from crm.cli import cli
from crm.core.cliutil import page_footer
from crm.core.db import transaction
from crm.core.models import Household
from crm.core.paging import Page, fetch, window

# Command path -> whether its rows have dates, so it takes --since/--until.
LISTINGS = {
    ("household", "list"): False,
    ("household", "search"): False,
    ("ticket", "list"): True,
    ("ticket", "register"): True,
    ("ticket", "groups"): True,
    ("ticket", "group", "overdue"): False,
    ("workorder", "list"): True,
    ("task", "list"): True,
    ("survey", "list"): True,
    ("satisfaction", "warnings"): True,
    ("improvement", "list"): True,
    ("fund", "ledger"): True,
    ("fund", "balance"): False,
    ("activity", "list"): True,
    ("club", "list"): False,
    ("coordinate", "log"): True,
    ("campaign", "list"): False,
    ("campaign", "contacts"): False,
    ("campaign", "touchpoints"): False,  # its window is --due-within
    ("revisit", "due"): False,  # one month's list (--month)
    ("revisit", "appointments"): False,
    ("revisit", "follow-ups"): True,
    ("audit", "list"): True,
    ("audit", "alerts"): False,  # its window is --days
    ("team", "list"): False,
    ("staff", "list"): False,
    ("sla", "list"): False,
    ("profitability", "settings", "list"): False,
    ("analysis", "referrers"): False,
    ("analysis", "chains"): False,
}


def _commands(group: click.Group, path=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_listing_pages_and_takes_a_date_range_where_its_rows_have_dates():
    commands = dict(_commands(cli))
    for path, dated in LISTINGS.items():
        options = {opt for param in commands[path].params for opt in param.opts}
        assert {"--limit", "--offset"} <= options, path
        assert ({"--since", "--until"} <= options) is dated, path
    # A new `list` command is a listing too.
    assert {path for path in commands if path[-1] == "list"} <= set(LISTINGS)


def test_the_footer_says_what_is_shown_of_how_many():
    assert page_footer(Page(range(3), 3)) == "共 3 条，已全部显示。"
    assert page_footer(Page(range(100), 2345, 0, 100)) == (
        "显示 1–100 条，共 2,345 条；其余请加 --offset 100（每页 100 条，可用 --limit 调整）。"
    )
    assert page_footer(Page(range(45), 2345, 2300, 100)) == "显示 2,301–2,345 条，共 2,345 条。"
    assert page_footer(Page([], 0)) == "共 0 条。"
    assert page_footer(Page([], 7, 10, 5)) == "第 11 条起没有记录，共 7 条：请用更小的 --offset。"
    assert window(range(10), 3, 8) == [8, 9] and window(range(10), 3, 8).total == 10
    assert window(range(10)).complete and not window(range(10), 3).complete


def test_fetch_counts_only_when_the_page_is_full(session):
    with transaction(session):
        session.add_all(Household(code=f"H{i}", name=f"{i}号") for i in range(5))
    query = select(Household.code).order_by(Household.code)
    statements = []

    from sqlalchemy import event

    engine = session.get_bind()
    listen = lambda *args: statements.append(args[2])
    event.listen(engine, "before_cursor_execute", listen)
    try:
        page = fetch(session, query, 2, 2)
        assert ([row.code for row in page], page.total, page.offset) == (["H2", "H3"], 5, 2)
        counted = len(statements)
        last = fetch(session, query, 10, 3)
        assert ([row.code for row in last], last.total) == (["H3", "H4"], 5)
        assert len(statements) == counted + 1  # the last page needs no COUNT
        past = fetch(session, query, 2, 9)
        assert (list(past), past.total) == ([], 5)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert sum("count(" in statement.lower() for statement in statements) == 2


def test_a_listing_pages_and_filters_by_local_dates(run, fixed_now):
    for code in ("H1", "H2", "H3"):
        assert run("household", "add", code, "--name", f"{code}家").exit_code == 0
    as_manager = {"as_": "王经理:manager"}
    listed = run("audit", "list", "--action", "create", "--entity", "households", **as_manager)
    assert listed.stdout.splitlines()[-1] == "共 3 条，已全部显示。"
    first = run(
        "audit", "list", "--action", "create", "--entity", "households", "--limit", "2",
        "--format", "json", **as_manager,
    )  # fmt: skip
    assert [row["entity_id"] for row in json.loads(first.stdout)] == ["3", "2"]
    assert first.stderr.startswith("显示 1–2 条，共 3 条；其余请加 --offset 2")
    # FIXED_NOW is 2 December 2026, 10:00 in Shanghai: the day is the business zone's.
    for since, until, count in (
        ("2026-12-02", "2026-12-02", 3),
        ("2026-12-03", None, 0),
        (None, "2026-12-01", 0),
    ):
        args = ["--since", since] if since else []
        args += ["--until", until] if until else []
        found = run(
            "audit", "list", "--action", "create", "--entity", "households", *args,
            "--format", "json", **as_manager,
        )  # fmt: skip
        assert found.exit_code == 0, found.output
        assert len(json.loads(found.stdout)) == count, (since, until)


@pytest.mark.parametrize("path", [p for p, dated in LISTINGS.items() if dated])
def test_a_bad_date_is_refused_before_any_work(run, path):
    result = run(*path, "--since", "2026-13-01")
    assert result.exit_code == 1, result.output
    assert "起始日期“2026-13-01”不是有效日期" in result.output
