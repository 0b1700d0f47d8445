"""Commands for one group complaint (群诉): `crm ticket group …`. Each parses, calls
crm.plugins.service.groups in one transaction and renders; `crm ticket groups` lists them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from crm.core.cliutil import (
    argument,
    at_option,
    emit,
    emit_record,
    format_option,
    get_app,
    paging,
    parse_at,
    project_option,
)
from crm.core.figures import HOURS
from crm.plugins.service.arguments import staff_argument, ticket_argument, ticket_option
from crm.plugins.service.rules import (
    CATEGORIES,
    GROUP_EVENTS,
    GROUP_PHASES,
    GROUP_STATUS,
    STATUSES,
)

# Every command here takes the group complaint first, by its number.
GROUP = argument("number", "群诉编号")

SHOW_LABELS = [
    ("number", "群诉编号"),
    ("project", "项目"),
    ("building", "楼栋"),
    ("topic", "共同问题"),
    ("category", "类别", CATEGORIES),
    ("phase", "阶段", GROUP_PHASES),
    ("status", "状态", GROUP_STATUS),
    ("merged_into", "已合并到"),
    ("households", "户数"),
    ("owner", "第一负责人"),
    ("team", "应急小组"),
    ("detected_at", "发现时间"),
    ("closed_at", "结束时间"),
    ("result", "处理结果"),
]
PLAN_COLUMNS = [
    ("position", "序号"),
    ("step", "步骤代码"),
    ("label", "处理步骤"),
    ("due_at", "期限"),
    ("done_at", "完成时间"),
    ("done_by", "完成人"),
    ("overdue", "已超期"),
    ("note", "说明"),
]
TICKET_COLUMNS = [
    ("number", "登记号"),
    ("status", "步骤", STATUSES),
    ("building", "楼栋"),
    ("opened_at", "受理时间"),
    ("summary", "摘要"),
]
EVENT_COLUMNS = [
    ("at", "时间"),
    ("actor", "操作人"),
    ("action", "动作", GROUP_EVENTS),
    ("note", "说明"),
]
# The lists of records in `ticket group show`, in the order it shows them. A plan step is
# named by its code (the one `group step` takes) with its label beside it as `label`.
SHOW_SECTIONS = [
    ("处理计划", "plan", PLAN_COLUMNS),
    ("工单", "tickets", TICKET_COLUMNS),
    ("处理记录", "events", EVENT_COLUMNS),
]
OVERDUE_COLUMNS = [
    ("number", "群诉编号"),
    ("step", "步骤代码"),
    ("label", "处理步骤"),
    ("due_at", "期限"),
    ("hours_late", "超期(小时)", HOURS),
    ("owner", "第一负责人"),
]
SHOW_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="输出格式：逐项列出，或一个 JSON 对象。",
)


def _in_transaction(work: Callable[[Any], Any]) -> Any:
    from sqlalchemy.orm.exc import StaleDataError

    from crm.core.db import transaction
    from crm.core.errors import CrmError

    try:
        with get_app().session() as session, transaction(session):
            return work(session)
    except StaleDataError:
        raise CrmError(
            "工单刚被别人改过：请用 crm ticket group show 查看最新情况后重试。"
        ) from None


def _brief(session, code: str) -> dict:
    from crm.plugins.service.groups import show_group

    return show_group(session, code)


def _print(detail: dict, fmt: str) -> None:
    # A table shows the plan, tickets and events under the group, JSON with their codes
    # labelled; a CSV row is the group's own.
    emit_record(detail, fmt, SHOW_LABELS, SHOW_SECTIONS)


def _do(work: Callable[[Any], Any], code_of: Callable[[Any], str], fmt: str) -> None:
    """Run the change, then show the group it touched."""
    _print(_in_transaction(lambda s: _brief(s, code_of(work(s)))), fmt)


@click.group("group")
def group() -> None:
    """一起群诉（同一楼栋或区域多户就同一问题投诉）：查看、并入与移出工单、合并与拆分、
    阶段、第一负责人、应急小组、处理计划与结束。"""


@group.command("show")
@GROUP
@SHOW_FORMAT
def group_show(number, fmt) -> None:
    """查看一起群诉：项目与楼栋、阶段、第一负责人、应急小组、处理计划、工单与处理记录。"""
    with get_app().session() as session:
        detail = _brief(session, number)
    _print(detail, fmt)


@group.command("create")
@project_option(required=True, help="项目名称。")
@click.option("--building", metavar="楼栋", help="楼栋名称，如 3栋（不填表示全项目或某一区域）。")
@click.option(
    "--topic", metavar="文字", required=True, help="共同问题，如“红线外垃圾场异味影响居住环境”。"
)
@click.option(
    "--phase",
    metavar="阶段",
    default="latent",
    show_default=True,
    help="阶段：latent 潜伏期、emerging 萌发期、outbreak 爆发期、disaster 灾难期。",
)
@ticket_option("--ticket", "tickets", multiple=True, help="一并并入的工单登记号（可多次给出）。")
@format_option
def group_create(project, building, topic, phase, tickets, fmt) -> None:
    """登记一起群诉（如在潜伏期就发现的共同问题），由总经理任第一负责人并生成处理计划。"""
    from crm.plugins.service.groups import create_group

    _do(
        lambda s: create_group(s, project, topic, building, phase, list(tickets)),
        lambda g: g.number,
        fmt,
    )


@group.command("link")
@GROUP
@ticket_argument("tickets", nargs=-1, required=True)
@format_option
def group_link(number, tickets, fmt) -> None:
    """把工单并入群诉（工单升级给第一负责人）。"""
    from crm.plugins.service.groups import link_tickets

    _do(lambda s: link_tickets(s, number, list(tickets)), lambda g: g.number, fmt)


@group.command("unlink")
@GROUP
@ticket_argument("tickets", nargs=-1, required=True)
@click.option(
    "--note", metavar="原因", required=True, help="移出的原因，如“与本群诉不是同一问题”。"
)
@format_option
def group_unlink(number, tickets, note, fmt) -> None:
    """把工单移出群诉；自动发现不会再把它并入任何群诉（需要时可手动并入）。"""
    from crm.plugins.service.groups import unlink_tickets

    _do(lambda s: unlink_tickets(s, number, list(tickets), note), lambda g: g.number, fmt)


@group.command("merge")
@GROUP
@argument("other", "另一群诉编号")
@format_option
def group_merge(number, other, fmt) -> None:
    """把另一群诉的全部工单合并到这起群诉（同一项目）；另一群诉标记为已合并。"""
    from crm.plugins.service.groups import merge_groups

    _do(lambda s: merge_groups(s, number, other), lambda g: g.number, fmt)


@group.command("split")
@GROUP
@ticket_argument("tickets", nargs=-1, required=True)
@click.option("--topic", metavar="文字", help="新群诉的共同问题（默认取第一张工单的摘要）。")
@format_option
def group_split(number, tickets, topic, fmt) -> None:
    """把群诉中的部分工单拆分为一起新的群诉（同一负责人、同一阶段、新的处理计划）。"""
    from crm.plugins.service.groups import split_group

    _do(lambda s: split_group(s, number, list(tickets), topic), lambda g: g.number, fmt)


@group.command("phase")
@GROUP
@argument("phase", "阶段")
@click.option("--note", metavar="原因", help="调整的原因，如“业主已在业主群发起联名”。")
@format_option
def group_phase(number, phase, note, fmt) -> None:
    """调整群诉阶段：latent 潜伏期、emerging 萌发期、outbreak 爆发期、disaster 灾难期。"""
    from crm.plugins.service.groups import set_phase

    _do(lambda s: set_phase(s, number, phase, note), lambda g: g.number, fmt)


@group.command("lead")
@GROUP
@staff_argument()
@format_option
def group_lead(number, staff, fmt) -> None:
    """更换群诉的第一负责人（经理或总经理；需经理或管理员角色）。"""
    from crm.plugins.service.groups import set_leader

    _do(lambda s: set_leader(s, number, staff), lambda g: g.number, fmt)


@group.command("member")
@GROUP
@staff_argument()
@format_option
def group_member(number, staff, fmt) -> None:
    """把一名员工加入群诉的应急小组。"""
    from crm.plugins.service.groups import add_member

    _do(lambda s: add_member(s, number, staff), lambda g: g.number, fmt)


@group.command("step")
@GROUP
@argument("step", "步骤")
@click.option(
    "--note", metavar="文字", required=True, help="这一步做了什么，如“已向各户发出书面答复”。"
)
@at_option
@format_option
def group_step(number, step, note, at_text, fmt) -> None:
    """登记处理计划中的一步已完成（步骤代码或名称，见 crm ticket group show）。"""
    from crm.plugins.service.groups import complete_step

    def work(session):
        complete_step(session, number, step, note, at=parse_at(at_text))
        return number

    _do(work, lambda code: code, fmt)


@group.command("close")
@GROUP
@click.option("--result", metavar="文字", required=True, help="群诉的处理结果。")
@format_option
def group_close(number, result, fmt) -> None:
    """结束群诉（处理计划的每一步都须已完成；需经理或管理员角色）。"""
    from crm.plugins.service.groups import close_group

    _do(lambda s: close_group(s, number, result), lambda g: g.number, fmt)


@group.command("overdue")
@paging(None)
@format_option
def group_overdue(limit, offset, fmt) -> None:
    """列出处理中的群诉里已超过期限、尚未完成的处理步骤。"""
    from crm.core.paging import window
    from crm.plugins.service.groups import overdue_steps

    with get_app().session() as session:
        rows = overdue_steps(session)
    emit(window(rows, limit, offset), fmt, OVERDUE_COLUMNS)


def register(cli: click.Group) -> None:
    cli.commands["ticket"].add_command(group)
