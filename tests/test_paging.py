"""Every listing is a page: it takes --limit/--offset (and --since/--until where its rows have
dates) and says how much of how many it shows, under a table or on stderr beside JSON/CSV."""

from __future__ import annotations

import datetime as dt
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
    ("analysis", "hotspots"): False,  # its window is --period
    ("analysis", "models"): True,
    ("analysis", "segment-runs"): True,
    ("campaign", "report"): True,
    ("profitability", "clv"): False,  # one scoring run
    # Short catalogues: everything unless a limit is given.
    ("plugins",): False,
    ("db", "current"): False,
    ("import", "limits"): False,
    ("scheduler", "jobs"): False,
    ("repair", "items"): False,
    ("staff", "logins"): False,
}

# Why a command with --format has no --limit/--offset: it shows one record, does something and
# says what, or its rows are a few groups bounded by the configuration or its own options.
RECORD = "one record (and its own few parts)"
ACTION = "an action: says what it did"
UNPAGED = {
    ("activity", "attend"): ACTION,
    ("activity", "create"): ACTION,
    ("activity", "show"): RECORD + ": one activity with its sign-ups, at most its capacity",
    ("activity", "signup"): ACTION,
    ("analysis", "classify", "report"): RECORD + ": a model, a row per class of the vocabulary",
    ("analysis", "classify", "suggest"): RECORD,
    ("analysis", "classify", "train"): ACTION + ": the new model's report",
    ("analysis", "propensity", "report"): RECORD + ": a model and its ten deciles",
    ("analysis", "propensity", "score"): ACTION + ": scores every household, shows ten deciles",
    ("analysis", "propensity", "train"): ACTION + ": the new model's report",
    ("analysis", "referrals"): "a row per project (and period in --since/--until), then totals",
    ("analysis", "segment-compare"): "a row per pair of segments, at most 20 of each",
    ("analysis", "segment-show"): RECORD + ": a segmentation, at most 20 segments",
    ("analysis", "segments"): ACTION + ": the new segmentation, at most 20 segments",
    ("campaign", "assign"): ACTION,
    ("campaign", "contact"): ACTION,
    ("campaign", "create"): ACTION,
    ("campaign", "pause"): ACTION,
    ("campaign", "plan-touchpoints"): ACTION + ": a row per touchpoint kind",
    ("campaign", "run"): ACTION,
    ("campaign", "show"): RECORD,
    ("campaign", "touchpoint-done"): ACTION,
    ("club", "enrol"): ACTION,
    ("club", "tier"): ACTION,
    ("coordinate", "run"): ACTION + " (its --limit caps the feedback collected)",
    ("coordinate", "watch"): ACTION + ": a line per cycle until stopped",
    ("export", "households"): "a bulk export of every row; --format is the file's",
    ("export", "members"): "a bulk export of every row; --format is the file's",
    ("export", "purchases"): "a bulk export of every row; --format is the file's",
    ("export", "service"): "a bulk export of every row; --format is the file's",
    ("fund", "allocate"): ACTION,
    ("fund", "contribute"): ACTION,
    ("fund", "spend"): ACTION,
    ("household", "show"): RECORD + ": the tracking card",
    ("import", "households"): ACTION + "; --format is the file's",
    ("import", "members"): ACTION + "; --format is the file's",
    ("import", "purchases"): ACTION + "; --format is the file's",
    ("import", "service"): ACTION + "; --format is the file's",
    ("improvement", "add"): ACTION,
    ("improvement", "done"): ACTION,
    ("profitability", "assess"): ACTION + ": a row per plan of the configured catalogue",
    ("profitability", "fit"): ACTION + ": the two fitted models",
    ("profitability", "groups"): "a row per project, tier or stage, then the ten-decile curve",
    ("profitability", "settings", "set"): ACTION,
    ("repair", "check"): ACTION,
    ("repair", "complete"): ACTION,
    ("repair", "period"): ACTION,
    ("repair", "quote"): ACTION,
    ("repair", "start"): ACTION,
    ("revisit", "appoint"): ACTION,
    ("revisit", "record"): ACTION,
    ("revisit", "rectify"): ACTION,
    ("revisit", "report"): RECORD + ": one month's summary, a fixed set of figures",
    ("revisit", "show"): RECORD + ": one household's visits",
    ("satisfaction", "report"): "a row per project, team, category, cause or month in the range",
    ("scheduler", "run"): ACTION + ": runs until stopped",
    ("scheduler", "set"): ACTION,
    ("scheduler", "sync"): ACTION + ": a row per kind of change",
    ("simulate",): ACTION + ": a row per simulated month, at most 36",
    ("sla", "set"): ACTION,
    ("staff", "add"): ACTION,
    ("staff", "project-manager"): ACTION + ", or one project's manager",
    ("staff", "role"): ACTION,
    ("survey", "record"): ACTION,
    ("task", "done"): ACTION,
    ("task", "show"): RECORD,
    ("team", "add"): ACTION,
    ("ticket", "assess"): ACTION,
    ("ticket", "check"): ACTION + ": a row per kind of finding",
    ("ticket", "choose"): ACTION + ": the ticket's few options",
    ("ticket", "claim"): ACTION,
    ("ticket", "close"): ACTION,
    ("ticket", "contact"): ACTION,
    ("ticket", "feedback"): ACTION,
    ("ticket", "group", "close"): ACTION,
    ("ticket", "group", "create"): ACTION,
    ("ticket", "group", "lead"): ACTION,
    ("ticket", "group", "link"): ACTION,
    ("ticket", "group", "member"): ACTION,
    ("ticket", "group", "merge"): ACTION,
    ("ticket", "group", "phase"): ACTION,
    ("ticket", "group", "show"): RECORD,
    ("ticket", "group", "split"): ACTION,
    ("ticket", "group", "step"): ACTION,
    ("ticket", "group", "unlink"): ACTION,
    ("ticket", "keep"): ACTION,
    ("ticket", "open"): ACTION,
    ("ticket", "options"): ACTION + ": the ticket's few options",
    ("ticket", "promise"): ACTION,
    ("ticket", "reassign"): ACTION,
    ("ticket", "reply"): ACTION,
    ("ticket", "revisit"): ACTION,
    ("ticket", "settle"): ACTION,
    ("ticket", "show"): RECORD,
    ("ticket", "step"): ACTION,
    ("ticket", "suggest"): RECORD,
    ("workorder", "arrive"): ACTION,
    ("workorder", "create"): ACTION,
    ("workorder", "done"): ACTION,
    ("workorder", "forward"): ACTION,
    ("workorder", "return"): ACTION,
    ("workorder", "show"): RECORD,
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


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts}


def test_every_command_with_a_format_pages_or_says_why_not():
    commands = dict(_commands(cli))
    paged = {path for path, c in commands.items() if {"--limit", "--offset"} <= _options(c)}
    unpaged = {path for path, c in commands.items() if "--format" in _options(c)} - paged
    # A new command that lists rows pages (and goes into LISTINGS), or says here why not.
    assert sorted(unpaged - set(UNPAGED)) == []
    assert sorted(set(UNPAGED) - unpaged) == []  # no reason left for what pages or is gone
    assert paged == set(LISTINGS)  # each paged command says whether it takes a date range


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


def test_a_short_catalogue_shows_all_of_it_unless_asked(run):
    everything = run("plugins", "--format", "json")
    names = [row["name"] for row in json.loads(everything.stdout)]
    assert len(names) >= 6 and everything.stderr == ""  # complete: nothing said beside JSON
    page = run("plugins", "--offset", "1", "--limit", "2", "--format", "csv")
    assert [line.split(",")[0] for line in page.stdout.splitlines()[1:]] == names[1:3]
    assert page.stderr.startswith(f"显示 2–3 条，共 {len(names)} 条；其余请加 --offset 3")
    items = run("repair", "items")
    assert items.stdout.splitlines()[-1].endswith("条，已全部显示。"), items.output
    chains = json.loads(run("db", "current", "--format", "json").stdout)
    first = run("db", "current", "--limit", "1")
    assert first.stdout.splitlines()[-1].startswith(f"显示 1–1 条，共 {len(chains)} 条")


def test_saved_models_and_segmentations_page_by_their_dates(session, run):
    from crm.plugins.analysis.models import SegmentRun
    from crm.plugins.analysis.registry import save_model

    with transaction(session):
        for day in (1, 2, 3):  # noon in Shanghai on 1, 2 and 3 December 2026
            at = dt.datetime(2026, 12, day, 4, tzinfo=dt.UTC)
            model = save_model(session, "segments", {"k": 2}, actor="分析员")
            model.trained_at = at
            session.add(
                SegmentRun(
                    run_at=at, run_by="分析员", as_of=at.date(), model_id=model.id, k=2,
                    chosen_by="given", households=10,
                )
            )  # fmt: skip
    models = run("analysis", "models", "--limit", "2", "--format", "json")
    assert [row["version"] for row in json.loads(models.stdout)] == [3, 2]
    assert models.stderr.startswith("显示 1–2 条，共 3 条")
    trained = run("analysis", "models", "--since", "2026-12-02", "--until", "2026-12-02")
    assert trained.exit_code == 0, trained.output
    assert trained.stdout.splitlines()[-1] == "共 1 条，已全部显示。"
    assert "2026-12-02 12:00" in trained.stdout
    runs = run("analysis", "segment-runs", "--until", "2026-12-02", "--format", "json")
    assert [row["model_version"] for row in json.loads(runs.stdout)] == [2, 1]
    later = run("analysis", "segment-runs", "--offset", "1", "--limit", "1")
    assert later.stdout.splitlines()[-1] == (
        "显示 2–2 条，共 3 条；其余请加 --offset 2（每页 1 条，可用 --limit 调整）。"
    )
