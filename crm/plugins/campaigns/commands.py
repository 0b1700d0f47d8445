"""The `crm revisit` commands of the four-year revisit programme (四年之约).

Each command parses, calls the library (revisits.py), renders; heavy imports stay inside the
functions so `crm --help` stays fast.
"""

from __future__ import annotations

import click

from crm.core.cliutil import emit, emit_record, format_option, get_app, parse_day
from crm.core.clock import local_today

VISIT_LABELS = [
    ("id", "走访编号"),
    ("household", "客户编号"),
    ("due_month", "到期月份"),
    ("anniversary", "第几次四年之约"),
    ("visited_on", "走访日期"),
    ("visitor", "走访人"),
    ("opinions", "意见与建议"),
    ("out_of_scope", "超出范围的说明"),
    ("satisfaction", "满意度"),
    ("follows", "回访自"),
    ("corrects", "更正"),
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
]
FOLLOW_UP_COLUMNS = [
    ("visit", "走访编号"),
    ("household", "客户编号"),
    ("due_month", "到期月份"),
    ("visited_on", "走访日期"),
    ("visitor", "走访人"),
    ("satisfaction", "满意度"),
    ("open_rectifications", "未完成整改"),
    ("reason", "原因"),
]


@click.group()
def revisit() -> None:
    """四年之约：按交付日期每四年走访一次，记录意见、整改与回访。"""


@revisit.command("due")
@click.option("--month", required=True, help="到期月份，如 2026-12。")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="导出给走访小组的文件（.csv 或 .xlsx）；不写则输出到屏幕。",
)
@format_option
def revisit_due(month: str, output: str | None, fmt: str) -> None:
    """列出某月到期走访的客户，按项目和楼栋排列；电话按角色脱敏。"""
    from pathlib import Path

    from crm.core.db import transaction
    from crm.plugins.campaigns.revisits import DUE_COLUMNS, due_list, export_due_list

    with get_app().session() as session, transaction(session):
        if output:
            count = export_due_list(session, month, Path(output))
            click.echo(f"已导出 {count} 户到 {output}。", err=True)
            return
        rows = due_list(session, month)
    emit(rows, fmt, DUE_COLUMNS)


@revisit.command("record")
@click.argument("code")
@click.option("--month", required=True, help="这次走访对应的到期月份，如 2026-12。")
@click.option("--unit", help="客户在该月有多套房到期时，指定房号。")
@click.option("--date", "visited", help="走访日期（默认今天），如 2026-12-05。")
@click.option("--visitor", required=True, help="走访人姓名。")
@click.option("--opinions", help="客户的意见和建议。")
@click.option("--out-of-scope", help="对超出范围的意见所做的解释。")
@click.option("--satisfaction", type=click.IntRange(1, 5), help="客户满意度（1-5）。")
@click.option(
    "--issue",
    "issues",
    multiple=True,
    help="不符合项，可重复；与 --owner、--due 按顺序一一对应。",
)
@click.option("--owner", "owners", multiple=True, help="对应不符合项的整改责任人（姓名）。")
@click.option("--due", "dues", multiple=True, help="对应不符合项的整改期限，如 2027-01-15。")
@click.option("--follows", type=int, help="这是对哪次走访（编号）的回访。")
@click.option("--corrects", type=int, help="这条记录更正哪次走访（编号）；原记录保留。")
@format_option
def revisit_record(
    code: str,
    month: str,
    unit: str | None,
    visited: str | None,
    visitor: str,
    opinions: str | None,
    out_of_scope: str | None,
    satisfaction: int | None,
    issues: tuple[str, ...],
    owners: tuple[str, ...],
    dues: tuple[str, ...],
    follows: int | None,
    corrects: int | None,
    fmt: str,
) -> None:
    """记录一次走访：意见建议、不符合项及其整改责任人和期限、满意度。"""
    from crm.core.db import transaction
    from crm.core.errors import CrmError
    from crm.plugins.campaigns.revisits import record_visit, visit_dict

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
        )
        record = visit_dict(visit, code.strip())
    if fmt != "json":
        record["rectifications"] = [
            f"{item['id']}:{item['issue']}（{item['owner']}，{item['due_on']}前）"
            for item in record["rectifications"]
        ]
    emit_record(record, fmt, VISIT_LABELS)


@revisit.command("rectify")
@click.argument("rectification_id", type=int)
@click.option("--measures", required=True, help="采取的整改措施。")
@click.option("--date", "done", help="整改完成日期（默认今天）。")
@format_option
def revisit_rectify(rectification_id: int, measures: str, done: str | None, fmt: str) -> None:
    """登记一项整改已完成及其措施；之后请回访确认客户满意度。"""
    from crm.core.db import transaction
    from crm.plugins.campaigns.revisits import rectify

    with get_app().session() as session, transaction(session):
        item = rectify(
            session, rectification_id, measures, parse_day(done, "完成日期") or local_today()
        )
        record = {
            "visit": item.visit_id,
            "id": item.id,
            "issue": item.issue,
            "owner": item.owner,
            "due_on": item.due_on,
            "measures": item.measures,
            "done_on": item.done_on,
        }
    emit_record(record, fmt, RECTIFICATION_COLUMNS)


@revisit.command("show")
@click.argument("code")
@format_option
def revisit_show(code: str, fmt: str) -> None:
    """一户的全部走访记录及整改项（记录永久保存）。"""
    from crm.plugins.campaigns.revisits import household_visits

    with get_app().session() as session:
        visits = household_visits(session, code)
    if fmt == "json":
        from crm.core.render import to_json

        click.echo(to_json(visits))
        return
    emit(visits, fmt, [pair for pair in VISIT_LABELS if pair[0] != "rectifications"])
    items = [{"visit": v["id"], **item} for v in visits for item in v["rectifications"]]
    if items and fmt == "table":
        click.echo()
        emit(items, fmt, RECTIFICATION_COLUMNS)


@revisit.command("follow-ups")
@format_option
def revisit_follow_ups(fmt: str) -> None:
    """待回访的走访：客户不满意或整改后尚未回访确认的。"""
    from crm.plugins.campaigns.revisits import open_follow_ups

    with get_app().session() as session:
        rows = open_follow_ups(session)
    emit(rows, fmt, FOLLOW_UP_COLUMNS)


def register(cli: click.Group) -> None:
    cli.add_command(revisit)
