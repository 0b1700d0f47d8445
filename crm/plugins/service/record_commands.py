"""Commands for the complaint record: options offered to the customer and the one chosen
(`crm ticket options|choose`), the register as the complaint register keeps it (`crm ticket
register`), and improvement plans from the periodic statistics (`crm improvement …`)."""

from __future__ import annotations

import click

from crm.core.cliutil import (
    argument,
    at_option,
    date_range,
    day_bound,
    emit,
    emit_record,
    format_option,
    get_app,
    paging,
    parse_at,
    team_option,
)
from crm.core.vocab import COMPLAINT_CATEGORIES, COMPLAINT_CAUSES, SERVICE_KINDS
from crm.plugins.service.arguments import staff_option, ticket_argument
from crm.plugins.service.rules import SEVERITIES

OPTION_COLUMNS = [
    ("seq", "方案"),
    ("text", "内容"),
    ("offered_at", "提出时间"),
    ("offered_by", "提出人"),
    ("chosen", "客户选定"),
]
REGISTER_COLUMNS = [
    ("number", "登记号"),
    ("household", "客户编号"),
    ("household_name", "客户"),
    ("kind", "类型", SERVICE_KINDS),
    ("severity", "性质", SEVERITIES),
    ("category", "类别", COMPLAINT_CATEGORIES),
    ("summary", "内容摘要"),
    ("causes", "投诉原因", COMPLAINT_CAUSES),
    ("status", "状态", {"open": "处理中", "closed": "已关闭"}),
    ("opened_at", "登记时间"),
    ("result", "处理结果"),
]
PLAN_COLUMNS = [
    ("number", "计划编号"),
    ("what", "改进内容"),
    ("period", "统计期间"),
    ("team", "班组"),
    ("category", "类别", COMPLAINT_CATEGORIES),
    ("cause", "投诉原因", COMPLAINT_CAUSES),
    ("basis_count", "期间投诉件数"),
    ("basis", "依据"),
    ("owner", "负责人"),
    ("due_at", "完成期限"),
    ("overdue", "已逾期"),
    ("status", "状态", {"open": "进行中", "done": "已完成"}),
    ("completed_at", "完成时间"),
    ("outcome", "改进结果"),
]


@click.command("options")
@ticket_argument()
@click.option(
    "--offer",
    "offers",
    metavar="方案",
    multiple=True,
    required=True,
    help="提供给客户的一个方案；可多次给出（最好不止一个，递进提出）。",
)
@click.option(
    "--chosen", metavar="方案编号", type=click.IntRange(1), help="客户当场选定的方案编号。"
)
@at_option
@format_option
def ticket_options(number, offers, chosen, at_text, fmt) -> None:
    """登记向客户提供的方案（编号接在已提供的方案之后），可同时登记客户选定的方案。"""
    from crm.core.db import transaction
    from crm.plugins.service.complaint_record import choose_option, offer_options, option_rows
    from crm.plugins.service.tickets import get_ticket

    at = parse_at(at_text)
    with get_app().session() as session, transaction(session):
        offer_options(session, number, list(offers), at=at)
        if chosen is not None:
            choose_option(session, number, chosen, at=at)
        rows = option_rows(session, get_ticket(session, number).id)
    emit(rows, fmt, OPTION_COLUMNS)


@click.command("choose")
@ticket_argument()
@argument("seq", "方案编号", type=click.IntRange(1))
@at_option
@format_option
def ticket_choose(number, seq, at_text, fmt) -> None:
    """登记客户从已提供的方案中选定的一个（再次选定则改为新的选择）。"""
    from crm.core.db import transaction
    from crm.plugins.service.complaint_record import choose_option, option_rows
    from crm.plugins.service.tickets import get_ticket

    with get_app().session() as session, transaction(session):
        choose_option(session, number, seq, at=parse_at(at_text))
        rows = option_rows(session, get_ticket(session, number).id)
    emit(rows, fmt, OPTION_COLUMNS)


@click.command("register")
@click.option(
    "--kind",
    metavar="工单类型",
    help="只看某类登记：complaint 投诉、repair 维修、suggestion 建议等。",
)
@date_range("受理日期", "2026-01-01")
@paging(200)
@format_option
def ticket_register(kind, since, until, limit, offset, fmt) -> None:
    """服务登记簿（客户投诉登记表）：客户、登记号、性质与内容摘要、投诉原因、处理结果，最新的在前。"""
    from crm.plugins.service.complaint_record import register_rows

    with get_app().session() as session:
        rows = register_rows(session, kind, since, until, limit, offset)
    emit(rows, fmt, REGISTER_COLUMNS)


@click.group()
def improvement() -> None:
    """持续改进：按定期统计（班组、类别、投诉原因）制定的改进计划，有负责人和完成期限。"""


@improvement.command("add")
@click.option("--what", metavar="文字", required=True, help="改进什么、怎么改。")
@staff_option("--owner", required=True, help="负责人（员工姓名）。")
@click.option(
    "--due", metavar="期限", required=True, help="完成期限，如 2026-06-30 或 2026-06-30 18:00。"
)
@click.option("--since", metavar="日期", help="所依据统计的起始日期（含），如 2026-04-01。")
@click.option("--until", metavar="日期", help="所依据统计的截止日期（含），如 2026-04-30。")
@team_option(help="所依据统计的班组（代码或名称）。")
@click.option("--category", metavar="类别", help="所依据统计的类别：工程、设计、销售管理、服务。")
@click.option("--cause", metavar="原因", help="所依据统计的投诉原因，如 承诺未兑现。")
@click.option("--basis", metavar="文字", help="依据说明（统计看到了什么）。")
@format_option
def improvement_add(what, owner, due, since, until, team, category, cause, basis, fmt) -> None:
    """制定一项改进计划：同时按统计期间、班组、类别与原因数出投诉件数作为依据。"""
    from crm.core.db import transaction
    from crm.core.models import utcnow
    from crm.plugins.service.dispatch import parse_local_time
    from crm.plugins.service.improvement import add_plan, plan_row

    with get_app().session() as session, transaction(session):
        plan = add_plan(
            session,
            what,
            owner,
            parse_local_time(due),
            since=day_bound(since, "起始日期"),
            until=day_bound(until, "截止日期", end=True),
            team=team,
            category=category,
            cause=cause,
            basis=basis,
        )
        row = plan_row(plan, utcnow())
    emit_record(row, fmt, PLAN_COLUMNS)


@improvement.command("list")
@click.option("--status", type=click.Choice(["open", "done"]), help="只看进行中或已完成的。")
@staff_option("--owner", help="只看某位负责人的。")
@click.option("--overdue", is_flag=True, help="只看已逾期未完成的。")
@date_range("完成期限")
@paging(None)
@format_option
def improvement_list(status, owner, overdue, since, until, limit, offset, fmt) -> None:
    """列出改进计划，期限最早的在前。"""
    from crm.plugins.service.improvement import list_plans

    with get_app().session() as session:
        rows = list_plans(
            session, status, owner, overdue, limit=limit, offset=offset, since=since, until=until
        )
    emit(rows, fmt, PLAN_COLUMNS)


@improvement.command("done")
@argument("number", "计划编号")
@click.option("--outcome", metavar="文字", required=True, help="改进结果：做了什么、效果如何。")
@format_option
def improvement_done(number, outcome, fmt) -> None:
    """登记一项改进计划已完成及其结果。"""
    from crm.core.db import transaction
    from crm.core.models import utcnow
    from crm.plugins.service.improvement import complete_plan, plan_row

    with get_app().session() as session, transaction(session):
        row = plan_row(complete_plan(session, number, outcome), utcnow())
    emit_record(row, fmt, PLAN_COLUMNS)


def register(cli: click.Group) -> None:
    from crm.plugins.service.ticket_commands import ticket

    for command in (ticket_options, ticket_choose, ticket_register):
        ticket.add_command(command)
    cli.add_command(improvement)
