"""`crm fund …`: the 一路同行 loyalty fund's allocations, contributions, spending, balances
and ledger."""

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
    household_option,
    paging,
    project_option,
)
from crm.core.figures import MONEY
from crm.plugins.service.arguments import work_order_option
from crm.plugins.service.rules import FUND_KINDS as KIND_LABELS

DIRECTIONS = {"in": "收入", "out": "支出"}
ENTRY_LABELS = [
    ("message", "结果"),
    ("id", "编号"),
    ("project", "项目"),
    ("year", "基金年度"),
    ("kind", "类型", KIND_LABELS),
    ("amount", "金额(元)", MONEY),
    ("household", "客户编号"),
    ("activity_id", "活动编号"),
    ("work_order", "派工单"),
    ("balance", "项目基金余额(元)", MONEY),
    ("note", "说明"),
]
LEDGER_COLUMNS = [
    ("id", "编号"),
    ("at", "时间"),
    ("year", "年度"),
    ("project", "项目"),
    ("kind", "类型", KIND_LABELS),
    ("direction", "收支", DIRECTIONS),
    ("amount", "金额(元)", MONEY),
    ("household", "客户编号"),
    ("activity_id", "活动编号"),
    ("work_order", "派工单"),
    ("note", "说明"),
    ("by", "经办人"),
]
PROJECT_COLUMNS = [
    ("project", "项目"),
    ("opening", "上年结转(元)", MONEY),
    ("allocated", "利润拨付(元)", MONEY),
    ("contributed", "客户出资(元)", MONEY),
    ("spent_activity", "业主活动(元)", MONEY),
    ("spent_gift", "礼品(元)", MONEY),
    ("spent_care", "其他关怀(元)", MONEY),
    ("spent", "支出合计(元)", MONEY),
    ("balance", "余额(元)", MONEY),
]
HOUSEHOLD_COLUMNS = [
    ("household", "客户编号"),
    ("name", "客户"),
    ("project", "项目"),
    ("contributed", "出资(元)", MONEY),
    ("received", "受惠(元)", MONEY),
    ("net", "净受惠(元)", MONEY),
]
AT_HELP = "发生时间，如 2026-09-20 14:00（业务时区）；默认现在。"


def _at(text: str | None):
    from crm.plugins.service.dispatch import parse_local_time

    return parse_local_time(text) if text else None


def _record(session, entry, message: str) -> dict:
    from crm.core.models import Household, Project
    from crm.plugins.service.fund import balance
    from crm.plugins.service.models import WorkOrder

    household = session.get(Household, entry.household_id) if entry.household_id else None
    order = session.get(WorkOrder, entry.work_order_id) if entry.work_order_id else None
    return {
        "message": message,
        "id": entry.id,
        "project": session.get(Project, entry.project_id).name,
        "year": entry.year,
        "kind": entry.kind,
        "amount": float(entry.amount),
        "household": household.code if household else None,
        "activity_id": entry.activity_id,
        "work_order": order.number if order else None,
        "balance": float(balance(session, entry.project_id)),
        "note": entry.note,
    }


@click.group()
def fund() -> None:
    """一路同行忠诚基金：年度利润拨付、客户出资、活动与礼品支出，按项目与客户看余额和台账。"""


@fund.command("allocate")
@argument("project", "项目")
@argument("amount", "金额")
@click.option("--year", metavar="年度", type=int, help="基金年度，如 2026；默认今年。")
@click.option("--note", metavar="文字", help="说明，如“2026 年度利润拨付”。")
@click.option("--at", "at", metavar="时间", help=AT_HELP)
@format_option
def allocate_command(project, amount, year, note, at, fmt) -> None:
    """从年度利润向项目的基金拨付一笔金额（元；需经理权限）。"""
    from crm.core.db import transaction
    from crm.plugins.service.fund import allocate

    with get_app().session() as session, transaction(session):
        entry = allocate(session, project, amount, year=year, note=note, now=_at(at))
        record = _record(
            session, entry, f"已向{project}的一路同行基金拨付 {entry.amount:,.2f} 元。"
        )
    emit_record(record, fmt, ENTRY_LABELS)


@fund.command("contribute")
@household_argument()
@argument("amount", "金额")
@click.option("--note", metavar="文字", help="说明。")
@click.option("--at", "at", metavar="时间", help=AT_HELP)
@format_option
def contribute_command(code, amount, note, at, fmt) -> None:
    """登记客户家庭向所属项目基金出资（金额以元计）。"""
    from crm.core.db import transaction
    from crm.plugins.service.fund import contribute

    with get_app().session() as session, transaction(session):
        entry = contribute(session, code, amount, note=note, now=_at(at))
        record = _record(session, entry, f"已登记 {code} 出资 {entry.amount:,.2f} 元。")
    emit_record(record, fmt, ENTRY_LABELS)


@fund.command("spend")
@argument("amount", "金额", required=False)
@click.option(
    "--kind",
    type=click.Choice(["activity", "gift", "care"]),
    default="care",
    show_default=True,
    help="支出类型：activity 业主活动、gift 礼品、care 其他关怀。",
)
@project_option(help="从哪个项目的基金列支（项目全名）；给出客户或活动时可省略。")
@household_option(help="受惠的客户编号（礼品必填）。")
@click.option(
    "--activity",
    "activity_id",
    metavar="活动编号",
    type=int,
    help="列支的业主活动编号（金额默认取活动费用）。",
)
@work_order_option(help="送出礼品的派工单号（其费用已记在派工单上）。")
@click.option("--note", metavar="文字", help="说明。")
@click.option("--at", "at", metavar="时间", help=AT_HELP)
@format_option
def spend_command(amount, kind, project, household, activity_id, work_order, note, at, fmt):
    """从项目基金支出一笔金额（元）：业主活动、礼品或其他关怀；余额不足时拒绝。"""
    from crm.core.db import transaction
    from crm.plugins.service.fund import spend

    with get_app().session() as session, transaction(session):
        entry = spend(
            session,
            amount,
            kind=kind,
            project=project,
            household=household,
            activity_id=activity_id,
            work_order=work_order,
            note=note,
            now=_at(at),
        )
        record = _record(session, entry, f"已从基金支出 {entry.amount:,.2f} 元。")
    emit_record(record, fmt, ENTRY_LABELS)


@fund.command("balance")
@click.option(
    "--by",
    "by",
    type=click.Choice(["project", "household"]),
    default="project",
    show_default=True,
    help="按 project 项目或 household 客户家庭汇总。",
)
@project_option(help="只看某个项目（项目全名）。")
@click.option(
    "--year", metavar="年度", type=int, help="只看某个基金年度（按项目汇总时给出上年结转）。"
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    metavar="条数",
    help="最多显示条数（按客户时默认 50 户，按项目时默认全部）。",
)
@click.option(
    "--offset",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    metavar="条数",
    help="跳过前面这么多条（翻页）。",
)
@format_option
def balance_command(by, project, year, limit, offset, fmt) -> None:
    """基金余额：按项目列出结转、拨付、出资、各类支出与余额，或按客户列出出资与受惠。"""
    from crm.core.paging import window
    from crm.plugins.service.fund import household_balances, project_balances

    with get_app().session() as session:
        if by == "project":
            rows = window(project_balances(session, project, year), limit, offset)
            emit(rows, fmt, PROJECT_COLUMNS)
        else:
            rows = household_balances(session, project, year, limit or 50, offset)
            emit(rows, fmt, HOUSEHOLD_COLUMNS)


@fund.command("ledger")
@project_option(help="只看某个项目（项目全名）。")
@household_option(help="只看某个客户家庭（客户编号）。")
@click.option("--year", metavar="年度", type=int, help="只看某个基金年度。")
@date_range("发生日期")
@paging(100)
@format_option
def ledger_command(project, household, year, since, until, limit, offset, fmt) -> None:
    """基金台账：逐笔收支，最新的在前。"""
    from crm.plugins.service.fund import ledger

    with get_app().session() as session:
        rows = ledger(session, project, household, year, limit, offset, since, until)
        emit(rows, fmt, LEDGER_COLUMNS)


def register(cli: click.Group) -> None:
    cli.add_command(fund)
