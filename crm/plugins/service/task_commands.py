"""Commands for tasks (任务): the work coordination gives to staff, and what the customer
answered when it was done. Each parses, calls the library in one transaction, renders."""

from __future__ import annotations

import click

from crm.core.cliutil import argument, at_option, emit_record, format_option, get_app, parse_at
from crm.plugins.service.dispatch_commands import SHOW_FORMAT, SHOW_LABELS, emit_work, work_filters


@click.group()
def task() -> None:
    """任务：协调调度交给员工的跟进（回访、致歉、补偿、督办、项目整改），完成时记录客户答复。"""


@task.command("list")
@work_filters
def task_list(
    household, team_code, assignee, status, overdue, since, until, limit, offset, fmt
) -> None:
    """列出任务（最早派发的在前）。"""
    emit_work(
        fmt, tasks=True, household=household, team=team_code, assignee=assignee, status=status,
        overdue=overdue, since=since, until=until, limit=limit, offset=offset,
    )  # fmt: skip


@task.command("show")
@argument("number", "任务编号")
@SHOW_FORMAT
def task_show(number: str, fmt: str) -> None:
    """显示一项任务：起因（预警与协调决策）、处理人、时限与客户答复。"""
    from crm.plugins.service.dispatch import show_work_order

    with get_app().session() as session:
        record = show_work_order(session, number)
    emit_record(record, fmt, SHOW_LABELS)


@task.command("done")
@argument("number", "任务编号")
@click.option("--answer", metavar="文字", help="客户的答复（原话或要点）；对客户的跟进必填。")
@click.option(
    "--accepted/--not-accepted",
    default=None,
    help="客户是否接受（满意）；对客户的跟进必填。",
)
@click.option("--result", metavar="文字", help="做了什么；项目整改必填。")
@click.option("--cost", metavar="金额", help="实际花费（元）：补偿金额、礼品价值或维修成本。")
@at_option
@format_option
def task_done(number, answer, accepted, result, cost, at_text, fmt) -> None:
    """完成一项任务并记录客户的答复；结果在下一轮协调时写回决策记录。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import show_work_order
    from crm.plugins.service.tasks import complete_task

    with get_app().session() as session, transaction(session):
        done = complete_task(
            session, number, answer, accepted, result=result, cost=cost, at=parse_at(at_text)
        )
        record = {"message": f"任务 {done.number} 已完成。"} | show_work_order(session, done.number)
    emit_record(record, fmt, [("message", "结果"), *SHOW_LABELS])


def register(cli: click.Group) -> None:
    cli.add_command(task)
