"""The coordination commands: `crm coordinate run`, `watch` and `log`.

Each command parses, calls the library (cycle.py), renders; heavy imports stay inside the
functions so `crm --help` stays fast.
"""

from __future__ import annotations

import click

from crm.core.chain import TASK_KINDS
from crm.core.cliutil import (
    date_range,
    emit,
    emit_record,
    format_option,
    get_app,
    household_option,
    paging,
)
from crm.core.figures import VALUE
from crm.core.vocab import TEAM_KINDS
from crm.plugins.coordination.vocab import OUTCOMES, STATUSES

REPORT_LABELS = [
    ("collected", "收集反馈"),
    ("assessed", "得出方案"),
    ("no_plan", "无方案"),
    ("dispatched", "已派工"),
    ("undispatched", "未能派工"),
    ("closed", "已办结"),
    ("seconds", "用时（秒）"),
]
LOG_COLUMNS = [
    ("id", "编号"),
    ("feedback", "反馈编号"),
    ("household", "客户编号"),
    ("reason", "反馈原因"),
    ("options", "备选方案"),
    ("plan", "选定方案"),
    ("expected_value", "预期价值(元)", VALUE),
    ("plan_reason", "方案理由"),
    ("team_name", "处理团队"),
    ("work", "派工"),
    ("outcome", "结果"),
    ("answer", "客户答复"),
    ("accepted", "客户接受"),
    ("status", "状态", STATUSES),
    ("collected_at", "收集时间"),
    ("dispatched_at", "派工时间"),
    ("closed_at", "办结时间"),
    ("note", "说明"),
]
# What a narrow terminal leaves out of the log first: the options and the reasoning (in
# `--format json` and the task a decision made), then the dates and answers.
LOG_DROP = (
    "options", "plan_reason", "feedback", "expected_value", "answer", "accepted", "closed_at",
    "dispatched_at", "outcome", "team", "note",
)  # fmt: skip
# What JSON labels inside a decision: each option's task and team kind, and where each work
# order stands (its number -> its outcome).
LOG_SECTIONS = [
    (
        "备选方案",
        "options",
        [("name", "方案"), ("task", "任务", TASK_KINDS), ("team", "团队类型", TEAM_KINDS)],
    ),
    ("结果", "outcome", [("status", "状态", OUTCOMES)]),
]

batch_option = click.option(
    "--batch-size",
    metavar="条数",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="每批处理的反馈条数（每批每一步各一个事务）。",
)


def _summary(report) -> str:
    return f"{report.summary()}，用时 {report.seconds:.1f} 秒。"


@click.group()
def coordinate() -> None:
    """协调调度：满意度反馈 → 盈利能力评估 → 服务处理派工，记录每一项决策。"""


@coordinate.command("run")
@batch_option
@click.option(
    "--limit",
    metavar="条数",
    type=click.IntRange(0),
    help="本轮最多收集的新反馈条数（默认收集全部待处理的）。",
)
@format_option
def coordinate_run(batch_size: int, limit: int | None, fmt: str) -> None:
    """运行一轮协调：先续办上次未完成的决策，再收集待处理反馈、评估并派工，打印各步条数。"""
    from crm.plugins.coordination.cycle import run_cycle

    with get_app().session() as session:
        report = run_cycle(session, batch=batch_size, limit=limit)
    emit_record(report.as_dict(), fmt, REPORT_LABELS)


@coordinate.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=60.0,
    show_default=True,
    metavar="秒数",
    help="每隔多少秒运行一轮协调。",
)
@click.option(
    "--max-runs",
    metavar="轮数",
    type=click.IntRange(1),
    help="运行这么多轮后停止（默认一直运行到 Ctrl-C）。",
)
@batch_option
@format_option
def coordinate_watch(interval: float, max_runs: int | None, batch_size: int, fmt: str) -> None:
    """按固定间隔反复运行协调（定时任务；同一时刻只运行一轮，错过的合并为一轮），Ctrl-C 停止。

    每轮一行：表格格式为一句说明，json 为一行 JSON，csv 为一行数据（首行为表头）。
    """
    import datetime as dt

    from apscheduler.schedulers.blocking import BlockingScheduler

    from crm.core.errors import CrmError
    from crm.plugins.coordination.cycle import require_chain, run_cycle

    app = get_app()
    with app.session():  # a database that is missing or behind fails here, not in the job
        pass
    require_chain(app.pm)
    scheduler = BlockingScheduler(timezone=dt.UTC)
    runs = 0
    shown: list[int] = []  # runs printed so far: CSV prints its header once

    def one_run() -> None:
        nonlocal runs
        runs += 1
        try:
            with app.session() as session:
                report = run_cycle(session, batch=batch_size)
            _emit_run(runs, report, fmt, header=not shown)
            shown.append(runs)
        except CrmError as exc:
            click.echo(f"第 {runs} 轮未完成：{exc}", err=True)
        except Exception as exc:  # noqa: BLE001  one failed run must not end the watch: the next run resumes its decisions
            # One line, as the root group shows errors: a database error's driver message.
            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [repr(exc)]
            click.echo(f"第 {runs} 轮出错：{cause[0]}；未完成的决策将在下一轮继续。", err=True)
        if max_runs is not None and runs >= max_runs:
            scheduler.shutdown(wait=False)

    scheduler.add_job(
        one_run,
        "interval",
        seconds=interval,
        next_run_time=dt.datetime.now(dt.UTC),
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    click.echo(f"协调值守已开始：每 {interval:g} 秒运行一轮，按 Ctrl-C 停止。", err=True)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        click.echo("正在停止：等待本轮协调完成……", err=True)
        if scheduler.running:
            scheduler.shutdown(wait=True)
    click.echo(f"协调值守已停止，共运行 {runs} 轮。", err=True)


def _emit_run(number: int, report, fmt: str, header: bool) -> None:
    """One line per run, so a log collector can follow the watch."""
    if fmt == "table":
        click.echo(f"第 {number} 轮：{_summary(report)}")
        return
    row = {"run": number} | report.as_dict()
    if fmt == "json":
        import json

        click.echo(json.dumps(row, ensure_ascii=False))
        return
    if header:
        click.echo(",".join(row))
    click.echo(",".join(str(value) for value in row.values()))


def _flat(row: dict) -> dict:
    """Lists and mappings as one line of text, for the table and CSV."""
    return row | {
        "options": "、".join(f"{o['name']}（{o['expected_value']:,.0f}）" for o in row["options"]),
        "work": "、".join(row["work"]),
        "outcome": "、".join(
            f"{ref} {OUTCOMES.get(state['status'], state['status'])}"
            for ref, state in row["outcome"].items()
        ),
        "expected_value": None
        if row["expected_value"] is None
        else round(row["expected_value"], 2),
    }


@coordinate.command("log")
@click.option(
    "--status",
    metavar="状态",
    help="只看某种状态：collected 已收集、assessed 已评估、dispatched 已派工、closed 已办结、"
    "no_plan 无方案、undispatched 未派工（代码或中文均可）。",
)
@household_option(help="只看某个客户家庭（客户编号）。")
@click.option("--plan", metavar="方案名称", help="只看选定某个方案的决策（方案名称）。")
@date_range("反馈收集日期", "2026-04-01")
@paging(100)
@format_option
def coordinate_log(status, household, plan, since, until, limit, offset, fmt) -> None:
    """协调决策记录：反馈、备选方案、选定方案、派出的工作与结果，最新的在前。"""
    from crm.plugins.coordination.cycle import list_decisions

    with get_app().session() as session:
        rows = list_decisions(
            session,
            status=status,
            household=household,
            plan=plan,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    if fmt == "json":
        # Every field of a decision, not only the table's, the coded ones with their labels.
        known = {column[0]: column for column in LOG_COLUMNS}
        columns = [known.get(key, (key, key)) for key in rows[0]] if rows else LOG_COLUMNS
        emit(rows, fmt, columns, sections=LOG_SECTIONS)
    else:
        emit(rows.map(_flat), fmt, LOG_COLUMNS, drop=LOG_DROP)


def register(cli: click.Group) -> None:
    cli.add_command(coordinate)
