"""The `crm revisit` commands of the four-year revisit programme (四年之约).

Each command parses, calls the library (revisits.py), renders; heavy imports stay inside the
functions so `crm --help` stays fast.
"""

from __future__ import annotations

import click

from crm.core.cliutil import (
    argument,
    date_range,
    emit,
    emit_record,
    format_option,
    get_app,
    household_argument,
    paging,
    parse_day,
    parse_local_moment,
)
from crm.core.clock import local_today
from crm.plugins.campaigns.vocab import FOLLOW_UP_REASONS, OPINION_KINDS, RECTIFICATION_STATES

VISIT_LABELS = [
    ("id", "走访编号"),
    ("household", "客户编号"),
    ("due_month", "到期月份"),
    ("anniversary", "第几次四年之约"),
    ("appointed_at", "约定时间"),
    ("contact", "约定联系人"),
    ("visited_on", "走访日期"),
    ("visitor", "走访人"),
    ("opinions", "走访记录"),
    ("opinion_items", "意见与建议"),
    ("out_of_scope", "超出范围的说明"),
    ("satisfaction", "满意度"),
    ("follows", "回访自"),
    ("corrects", "更正"),
    ("superseded_by", "已被更正（走访编号）"),
    ("rectifications", "整改项"),
]
RECTIFICATION_COLUMNS = [
    ("visit", "走访编号"),
    ("id", "整改编号"),
    ("issue", "不符合项"),
    ("owner", "整改责任人"),
    ("due_on", "整改期限"),
    ("measures", "整改措施"),
    ("done_on", "完成日期"),
    ("rounds", "整改次数"),
    ("state", "状态", RECTIFICATION_STATES),
    ("confirmed_on", "客户确认日期"),
]
OPINION_COLUMNS = [("kind", "类别", OPINION_KINDS), ("text", "内容")]
# The lists of records in a visit, for JSON (their codes labelled); a table shows them as
# lines of the visit (_shown_visit) and `revisit show` its rectifications as a table of their
# own, with the visit's number.
VISIT_SECTIONS = [
    ("意见与建议", "opinion_items", OPINION_COLUMNS),
    ("整改项", "rectifications", RECTIFICATION_COLUMNS),
]
FOLLOW_UP_COLUMNS = [
    ("visit", "走访编号"),
    ("household", "客户编号"),
    ("due_month", "到期月份"),
    ("visited_on", "走访日期"),
    ("visitor", "走访人"),
    ("satisfaction", "满意度"),
    ("open_rectifications", "未关闭整改"),
    ("overdue", "逾期整改"),
    ("reasons", "原因", FOLLOW_UP_REASONS),
]
APPOINTMENT_COLUMNS = [
    ("id", "约定编号"),
    ("household", "客户编号"),
    ("unit", "房号"),
    ("due_month", "到期月份"),
    ("appointed_at", "约定时间"),
    ("contact", "客户联系人"),
    ("agreed_by", "约定人"),
    ("note", "备注"),
    ("visit", "走访编号"),
]


def _shown_visit(record: dict) -> dict:
    """A visit's lists as one line each, for a table or CSV."""
    return record | {
        "opinion_items": [
            f"{OPINION_KINDS.get(item['kind'], item['kind'])}：{item['text']}"
            for item in record["opinion_items"]
        ],
        "rectifications": [
            f"{item['id']}:{item['issue']}（{item['owner']}，{item['due_on']}前，"
            f"{RECTIFICATION_STATES[item['state']]}）"
            for item in record["rectifications"]
        ],
    }


@click.group()
def revisit() -> None:
    """四年之约：按交付日期每四年走访一次，记录意见、整改与回访。"""


@revisit.command("due")
@click.option("--month", metavar="月份", required=True, help="到期月份，如 2026-12。")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="导出给走访小组的文件（.csv 或 .xlsx）；不写则输出到屏幕。",
)
@paging(None, "套")
@format_option
def revisit_due(month: str, output: str | None, limit, offset, fmt: str) -> None:
    """列出某月到期走访的客户，按项目和楼栋排列；电话按角色脱敏。"""
    from pathlib import Path

    from crm.core.db import transaction
    from crm.plugins.campaigns.revisits import DUE_COLUMNS, due_list, export_due_list

    with get_app().session() as session, transaction(session):
        if output:
            count = export_due_list(session, month, Path(output))
            click.echo(f"已导出 {count} 户到 {output}。", err=True)
            return
        rows = due_list(session, month, limit, offset)
    emit(rows, fmt, DUE_COLUMNS)


@revisit.command("record")
@household_argument()
@click.option("--month", metavar="月份", required=True, help="这次走访对应的到期月份，如 2026-12。")
@click.option("--unit", metavar="房号", help="客户在该月有多套房到期时，指定房号。")
@click.option("--date", "visited", metavar="日期", help="走访日期（默认今天），如 2026-12-05。")
@click.option("--visitor", metavar="姓名", required=True, help="走访人姓名。")
@click.option("--opinions", metavar="文字", help="走访记录（概况，自由填写）。")
@click.option(
    "--opinion",
    "opinion_items",
    metavar="类别：内容",
    multiple=True,
    help="一条意见或建议，可重复；写成 类别：内容，类别为 意见、建议、表扬、非管理范畴（不写为意见）。",
)
@click.option("--out-of-scope", metavar="文字", help="对超出范围的意见所做的解释。")
@click.option(
    "--satisfaction", metavar="1-5", type=click.IntRange(1, 5), help="客户满意度（1-5）。"
)
@click.option(
    "--issue",
    "issues",
    metavar="不符合项",
    multiple=True,
    help="不符合项，可重复；与 --owner、--due 按顺序一一对应。",
)
@click.option(
    "--owner", "owners", metavar="姓名", multiple=True, help="对应不符合项的整改责任人（姓名）。"
)
@click.option(
    "--due", "dues", metavar="日期", multiple=True, help="对应不符合项的整改期限，如 2027-01-15。"
)
@click.option("--follows", metavar="走访编号", type=int, help="这是对哪次走访（编号）的回访。")
@click.option(
    "--corrects", metavar="走访编号", type=int, help="这条记录更正哪次走访（编号）；原记录保留。"
)
@click.option(
    "--reject",
    "rejects",
    metavar="整改编号",
    multiple=True,
    type=int,
    help="回访时客户仍不满意的整改项编号，可重复；退回再次整改（其余已整改项在满意时确认）。",
)
@format_option
def revisit_record(
    code: str,
    month: str,
    unit: str | None,
    visited: str | None,
    visitor: str,
    opinions: str | None,
    opinion_items: tuple[str, ...],
    out_of_scope: str | None,
    satisfaction: int | None,
    issues: tuple[str, ...],
    owners: tuple[str, ...],
    dues: tuple[str, ...],
    follows: int | None,
    corrects: int | None,
    rejects: tuple[int, ...],
    fmt: str,
) -> None:
    """记录一次走访或回访：意见建议、不符合项及其整改责任人和期限、满意度。"""
    from crm.core.db import transaction
    from crm.core.errors import CrmError
    from crm.plugins.campaigns.revisits import describe_visit, parse_opinion, record_visit

    if not len(issues) == len(owners) == len(dues):
        raise CrmError("每个 --issue 都要配一个 --owner 和一个 --due，请按顺序逐项填写。")
    items = [
        (issue, owner, parse_day(due, "整改期限") or local_today())
        for issue, owner, due in zip(issues, owners, dues)
    ]
    with get_app().session() as session, transaction(session):
        visit = record_visit(
            session,
            code,
            month,
            parse_day(visited, "走访日期") or local_today(),
            visitor,
            opinions=opinions,
            out_of_scope=out_of_scope,
            satisfaction=satisfaction,
            nonconformities=items,
            unit=unit,
            follows=follows,
            corrects=corrects,
            opinion_items=[parse_opinion(text) for text in opinion_items],
            rejects=list(rejects),
        )
        record = describe_visit(session, visit, code.strip())
    if fmt == "json":
        emit_record(record, fmt, VISIT_LABELS, VISIT_SECTIONS)
    else:
        emit_record(_shown_visit(record), fmt, VISIT_LABELS)


@revisit.command("rectify")
@argument("rectification_id", "整改编号", type=int)
@click.option("--measures", metavar="文字", required=True, help="采取的整改措施。")
@click.option("--date", "done", metavar="日期", help="整改完成日期（默认今天）。")
@format_option
def revisit_rectify(rectification_id: int, measures: str, done: str | None, fmt: str) -> None:
    """登记一项整改已完成（或客户不满意后再次整改）及其措施；之后请回访确认。"""
    from crm.core.db import transaction
    from crm.plugins.campaigns.revisits import rectification_dict, rectify

    with get_app().session() as session, transaction(session):
        item = rectify(
            session, rectification_id, measures, parse_day(done, "完成日期") or local_today()
        )
        record = rectification_dict(item, local_today())
    emit_record(record, fmt, RECTIFICATION_COLUMNS)


@revisit.command("show")
@household_argument()
@format_option
def revisit_show(code: str, fmt: str) -> None:
    """一户的全部走访记录及整改项（记录永久保存）。"""
    from crm.plugins.campaigns.revisits import household_visits

    with get_app().session() as session:
        visits = household_visits(session, code)
    if fmt == "json":
        from crm.core.render import json_record, to_json

        click.echo(to_json([json_record(v, VISIT_LABELS, VISIT_SECTIONS) for v in visits]))
        return
    emit(
        [_shown_visit(visit) for visit in visits],
        fmt,
        [pair for pair in VISIT_LABELS if pair[0] != "rectifications"],
    )
    items = [{"visit": v["id"], **item} for v in visits for item in v["rectifications"]]
    if items and fmt == "table":
        click.echo()
        emit(items, fmt, RECTIFICATION_COLUMNS)


@revisit.command("follow-ups")
@date_range("走访日期")
@paging(None)
@format_option
def revisit_follow_ups(since, until, limit, offset, fmt: str) -> None:
    """待跟进的走访：不符合项尚未整改并经客户确认，或客户不满意尚未回访的。"""
    from crm.plugins.campaigns.revisits import open_follow_ups

    with get_app().session() as session:
        rows = open_follow_ups(session, limit=limit, offset=offset, since=since, until=until)
    emit(rows, fmt, FOLLOW_UP_COLUMNS)


@revisit.command("appoint")
@household_argument()
@click.option("--month", metavar="月份", required=True, help="这次走访对应的到期月份，如 2026-12。")
@click.option("--unit", metavar="房号", help="客户在该月有多套房到期时，指定房号。")
@click.option(
    "--at",
    "at",
    metavar="时间",
    required=True,
    help="约定的走访时间，如 2026-12-05 10:00（本地时间）。",
)
@click.option(
    "--contact", metavar="联系人", required=True, help="约定的客户联系人：主要负责人或物业联系人。"
)
@click.option("--note", metavar="文字", help="备注，如需准备的走访资料。")
@format_option
def revisit_appoint(
    code: str,
    month: str,
    unit: str | None,
    at: str,
    contact: str,
    note: str | None,
    fmt: str,
) -> None:
    """与客户约定走访时间和联系人；再次约定即改期（原约定保留）。"""
    from crm.core.db import transaction
    from crm.plugins.campaigns.revisits import appoint_visit

    with get_app().session() as session, transaction(session):
        item = appoint_visit(
            session, code, month, parse_local_moment(at, "约定时间"), contact, unit=unit, note=note
        )
        record = {
            "id": item.id,
            "household": code.strip(),
            "due_month": item.due_month,
            "appointed_at": item.appointed_at,
            "contact": item.contact,
            "agreed_by": item.agreed_by,
            "note": item.note,
        }
    emit_record(record, fmt, APPOINTMENT_COLUMNS)


@revisit.command("appointments")
@click.option("--month", metavar="月份", required=True, help="到期月份，如 2026-12。")
@paging(None)
@format_option
def revisit_appointments(month: str, limit, offset, fmt: str) -> None:
    """某月到期走访已约定的时间和联系人（改期的只列最新一次）。"""
    from crm.plugins.campaigns.revisits import list_appointments

    with get_app().session() as session:
        rows = list_appointments(session, month, limit, offset)
    emit(rows, fmt, APPOINTMENT_COLUMNS)


@revisit.command("report")
@click.option("--month", metavar="月份", required=True, help="到期月份，如 2026-12。")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="报总经理办公室的 .xlsx 文件；不写则输出到屏幕。",
)
@format_option
def revisit_report(month: str, output: str | None, fmt: str) -> None:
    """某月走访汇总，报总经理办公室：走访情况、意见分类、整改未关闭与逾期、满意度前后对比。"""
    from pathlib import Path

    from crm.core.db import transaction
    from crm.plugins.campaigns.revisits import export_report, monthly_report, report_rows

    with get_app().session() as session, transaction(session):
        if output:
            report = export_report(session, month, Path(output))
            click.echo(f"已导出 {report['month']} 走访汇总到 {output}。", err=True)
            return
        report = monthly_report(session, month)
    if fmt == "json":
        from crm.core.render import to_json

        click.echo(to_json(report))
        return
    emit(report_rows(report), fmt, [("item", "项目"), ("value", "数值")])


def register(cli: click.Group) -> None:
    cli.add_command(revisit)
