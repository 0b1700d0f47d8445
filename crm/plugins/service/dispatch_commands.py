"""Commands for teams, staff, work orders (派工单) and repairs. Each parses, calls the library
in one transaction, renders; the heavy imports happen inside the commands."""

from __future__ import annotations

import click

from crm.core.cliutil import (
    argument,
    at_option,
    date_range,
    emit,
    emit_record,
    format_option,
    get_app,
    household_option,
    paging,
    parse_at,
    team_option,
)
from crm.core.security import ROLES
from crm.core.vocab import TEAM_KINDS
from crm.plugins.service.arguments import (
    staff_argument,
    staff_option,
    ticket_argument,
    ticket_option,
    work_order_argument,
)
from crm.plugins.service.rules import LEVELS, ORIGINS, WORK_KINDS, WORK_ORDER_STATUS

TEAM_COLUMNS = [
    ("code", "代码"),
    ("name", "名称"),
    ("kind", "类型", TEAM_KINDS),
    ("handles_label", "负责类别/项目"),
    ("staff", "在岗人数"),
    ("active", "启用"),
]
STAFF_COLUMNS = [
    ("name", "姓名"),
    ("team", "团队"),
    ("title", "岗位"),
    ("level", "级别", LEVELS),
    ("skills", "技能"),
    ("open_load", "在办件数"),
    ("active", "在岗"),
]
WORK_ORDER_COLUMNS = [
    ("number", "派工单号"),
    ("ticket", "登记号"),
    ("household", "客户编号"),
    ("kind", "类型", WORK_KINDS),
    ("origin", "来源", ORIGINS),
    ("team", "团队"),
    ("assignee", "处理人"),
    ("status", "状态", WORK_ORDER_STATUS),
    ("due_at", "时限"),
    ("overdue", "已超时"),
    ("completed_at", "完成时间"),
    ("description", "内容"),
]
# What a narrow terminal leaves out of the list first (what to do and by when stay).
WORK_ORDER_DROP = ("origin", "completed_at", "ticket", "team", "household")
SHOW_LABELS = [
    ("number", "派工单号"),
    ("ticket", "登记号"),
    ("household", "客户编号"),
    ("kind", "类型", WORK_KINDS),
    ("origin", "来源", ORIGINS),
    ("feedback", "预警编号"),
    ("decision", "协调决策"),
    ("team", "团队"),
    ("assignee", "处理人"),
    ("status", "状态", WORK_ORDER_STATUS),
    ("due_at", "时限"),
    ("overdue", "已超时"),
    ("skill", "所需技能"),
    ("created_at", "派工时间"),
    ("arrived_at", "到场时间"),
    ("completed_at", "完成时间"),
    ("completion_entered_at", "完成登记于"),
    ("result", "处理结果"),
    ("answer", "客户答复"),
    ("accepted", "客户接受"),
    ("returned_at", "退回时间"),
    ("returned_reason", "退回原因"),
    ("continues", "接续自"),
    ("continued_by", "由此接续"),
    ("description", "内容"),
]
REPAIR_LABELS = [
    ("ticket", "登记号"),
    ("item_label", "维修项目"),
    ("warranty_until", "保修至"),
    ("in_warranty", "在保修期内"),
    ("paid", "收费"),
    ("rework_of", "返修自"),
    ("reason", "判断依据"),
    ("fee_rate", "收费标准"),
    ("fee_stated_at", "告知时间"),
    ("fee_amount", "实收费用(元)"),
    ("fee_signed_by", "签字人"),
    ("fee_signed_at", "签字时间"),
    ("work_orders", "派工单"),
    ("revisit", "回访派工单"),
    ("revisit_due_at", "回访时限"),
]
# What an action did: the sentence first, then the record it touched.
ORDER_LABELS = [("message", "结果"), *SHOW_LABELS]
TEAM_LABELS = [
    ("message", "结果"),
    ("code", "代码"),
    ("name", "名称"),
    ("kind", "类型", TEAM_KINDS),
    ("handles", "负责类别/项目"),
]
STAFF_LABELS = [
    ("message", "结果"),
    ("name", "姓名"),
    ("team", "团队"),
    ("title", "岗位"),
    ("level", "级别", LEVELS),
    ("skills", "技能"),
    ("login", "数据库登录"),
]
PERIOD_LABELS = [
    ("message", "结果"),
    ("item", "代码"),
    ("label", "项目"),
    ("months", "保修期(月)"),
    ("statutory_months", "法定最低(月)"),
]
SHOW_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
    help="输出格式：逐项列出，或一个 JSON 对象。",
)


def _ask_password() -> str:
    """A password typed twice; click's own retry line would be English, so the loop is ours."""
    while True:
        password = click.prompt("密码", hide_input=True)
        if click.prompt("再输入一次", hide_input=True) == password:
            return password
        click.echo("错误：两次输入的不一致，请重新输入。", err=True)


def _split(text: str | None) -> list[str]:
    if not text:
        return []
    return [part for part in text.replace("，", ",").replace("、", ",").split(",") if part.strip()]


def _order_record(session, number: str, message: str) -> dict:
    from crm.plugins.service.dispatch import show_work_order

    return {"message": message} | show_work_order(session, number)


def _due(text: str | None):
    if not text:
        return None
    from crm.plugins.service.dispatch import parse_local_time

    return parse_local_time(text)


# --- teams ------------------------------------------------------------------------------------


@click.group()
def team() -> None:
    """处理团队：安全、保洁、技术、客服与外包方。"""


@team.command("list")
@paging(None)
@format_option
def team_list(limit, offset, fmt: str) -> None:
    """列出团队、负责的类别与维修项目、在岗人数。"""
    from crm.core.paging import window
    from crm.plugins.service.dispatch import handles_labels, list_teams

    with get_app().session() as session:
        rows = window(list_teams(session), limit, offset)
    labels = handles_labels()
    for row in rows:
        handled = row["handles"].split("、") if row["handles"] else []
        row["handles_label"] = "、".join(labels.get(code, code) for code in handled)
    if fmt == "json":  # the codes, with the labels beside them
        emit(rows, fmt, [*TEAM_COLUMNS[:3], ("handles", "handles"), *TEAM_COLUMNS[3:]])
        return
    emit(rows, fmt, TEAM_COLUMNS)


@team.command("add")
@argument("code", "团队代码")
@click.option("--name", metavar="团队名称", required=True, help="团队名称，如 绿化组。")
@click.option(
    "--kind",
    metavar="团队类型",
    required=True,
    help="团队类型：security（安全）、cleaning（保洁）、technical（技术）、"
    "customer_service（客服）、vendor（外包方）。",
)
@click.option(
    "--handles",
    metavar="负责范围",
    default="",
    help="按类别派工时由本团队负责的投诉类别、维修项目或服务范围（代码或名称），逗号分隔，"
    "如 绿化,除虫灭鼠。",
)
@format_option
def team_add(code: str, name: str, kind: str, handles: str, fmt: str) -> None:
    """新增一个团队（经理、管理员可操作）。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import add_team, handles_labels

    with get_app().session() as session, transaction(session):
        created = add_team(session, code, name, kind, _split(handles))
        record = {
            "message": f"已新增团队 {created.code}（{created.name}）。",
            "code": created.code,
            "name": created.name,
            "kind": created.kind,
            "handles": list(created.handles),
        }
    emit_record(record, fmt, [*TEAM_LABELS[:-1], ("handles", "负责类别/项目", handles_labels())])


# --- staff ------------------------------------------------------------------------------------


@click.group()
def staff() -> None:
    """员工：一线、主管、经理、总经理，按团队接单。"""


@staff.command("list")
@team_option("--team", "team_code", help="只看某个团队（代码或名称）。")
@paging(None)
@format_option
def staff_list(team_code: str | None, limit, offset, fmt: str) -> None:
    """列出员工及其在办件数（未关闭的投诉/报修 + 处理中的派工单）。"""
    from crm.core.paging import window
    from crm.plugins.service.dispatch import list_staff

    with get_app().session() as session:
        rows = list_staff(session, team_code)
    emit(window(rows, limit, offset), fmt, STAFF_COLUMNS)


@staff.command("add")
@argument("name", "姓名")
@team_option("--team", "team_code", required=True, help="所属团队（代码或名称）。")
@click.option(
    "--title", metavar="岗位", default="", help="岗位，如 技术员、安全员、客服大使、主管。"
)
@click.option(
    "--level",
    metavar="级别",
    type=click.IntRange(1, 4),
    default=1,
    show_default=True,
    help="级别：1 一线、2 主管、3 经理、4 总经理。",
)
@click.option("--skills", metavar="技能", default="", help="技能，逗号分隔，如 水电,木工。")
@click.option(
    "--login",
    metavar="登录名",
    help="同时为此人创建 PostgreSQL 数据库登录（仅 PostgreSQL，系统管理员操作）。",
)
@click.option(
    "--role",
    metavar="角色",
    default="agent",
    show_default=True,
    help="登录的 CRM 角色：sales、agent、manager、analyst、admin。",
)
@click.option(
    "--ask-password",
    is_flag=True,
    help="为登录设置密码（交互输入）；不设时按 pg_hba.conf 的方式认证（peer、证书）。",
)
@format_option
def staff_add(
    name: str,
    team_code: str,
    title: str,
    level: int,
    skills: str,
    login: str | None,
    role: str,
    ask_password: bool,
    fmt: str,
) -> None:
    """登记一名员工（经理、管理员可操作）；给出 --login 时同时创建其数据库登录。"""
    from crm.core.db import transaction
    from crm.core.logins import check_new_login, create_login
    from crm.plugins.service.dispatch import add_staff, check_new_staff

    password = None
    if login and ask_password:
        # What would be refused is refused before the password is typed twice.
        with get_app().session() as session:
            check_new_staff(session, name, team_code, level)
            check_new_login(session, login, role)
        password = _ask_password()
    with get_app().session() as session, transaction(session):
        created = add_staff(session, name, team_code, title, level, _split(skills))
        if login:
            role = create_login(session, login, role, password)
        record = {
            "message": f"已登记员工 {created.name}（{created.team.name}，{created.title}）"
            + (f"，数据库登录 {login}（{ROLES[role]}）。" if login else "。"),
            "login": login,
            "name": created.name,
            "team": created.team.name,
            "title": created.title,
            "level": created.level,
            "skills": list(created.skills),
        }
    emit_record(record, fmt, STAFF_LABELS)


@staff.command("role")
@argument("login", "登录名")
@argument("role", "角色")
@format_option
def staff_role(login: str, role: str, fmt: str) -> None:
    """把数据库登录放入 CRM 角色（sales、agent、manager、analyst、admin），
    并移出其他角色（仅 PostgreSQL，系统管理员操作）。"""
    from crm.core.db import transaction
    from crm.core.logins import set_login_role

    with get_app().session() as session, transaction(session):
        previous, role = set_login_role(session, login, role)
    before = ROLES.get(previous, "无") if previous else "无"
    record = {
        "message": f"数据库登录 {login} 的角色：{before} → {ROLES[role]}。",
        "login": login,
        "previous_role": previous,
        "role": role,
    }
    emit_record(
        record,
        fmt,
        [
            ("message", "结果"),
            ("login", "登录名"),
            ("previous_role", "原角色", ROLES),
            ("role", "角色", ROLES),
        ],
    )


@staff.command("logins")
@paging(None)
@format_option
def staff_logins(limit, offset, fmt: str) -> None:
    """列出有 CRM 角色的数据库登录（仅 PostgreSQL）。"""
    from crm.core.logins import list_logins
    from crm.core.paging import window

    with get_app().session() as session:
        rows = window(list_logins(session), limit, offset)
    emit(rows, fmt, [("login", "登录名"), ("role", "角色", ROLES)])


@staff.command("project-manager")
@argument("project", "项目")
@staff_argument("name", required=False)
@format_option
def staff_project_manager(project: str, name: str | None, fmt: str) -> None:
    """指定项目负责人（经理级）：项目整改与督办任务交给此人；不给姓名时列出各项目的负责人。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import project_managers, set_project_manager

    with get_app().session() as session, transaction(session):
        if name:
            set_project_manager(session, project, name)
        rows = [row for row in project_managers(session) if row["project"] == project.strip()]
    emit(rows, fmt, [("project", "项目"), ("manager", "负责人"), ("title", "岗位")])


# --- work orders ------------------------------------------------------------------------------


@click.group()
def workorder() -> None:
    """派工单：补救措施、纠正措施、维修与回访，与工单共用登记号。"""


def work_filters(func):
    """The filters `crm workorder list` and `crm task list` share."""
    for option in reversed(
        (
            household_option(help="只看某个客户家庭（客户编号）的。"),
            team_option("--team", "team_code", help="只看某个团队（代码或名称）。"),
            staff_option("--assignee", help="只看某人的。"),
            click.option(
                "--status",
                metavar="状态",
                help="只看某种状态：open（处理中）、done、returned、cancelled。",
            ),
            click.option("--overdue", is_flag=True, help="只看已超过时限仍未完成的。"),
            date_range("完成时限"),
            paging(50),
            format_option,
        )
    ):
        func = option(func)
    return func


def emit_work(fmt: str, **filters) -> None:
    """List work orders and tasks by the shared filters."""
    from crm.plugins.service.dispatch import list_work_orders

    with get_app().session() as session:
        rows = list_work_orders(session, **filters)
    emit(rows, fmt, WORK_ORDER_COLUMNS, drop=WORK_ORDER_DROP)


@workorder.command("list")
@ticket_option(help="只看某个登记号的派工单。")
@click.option(
    "--tasks/--orders",
    "tasks",
    default=None,
    help="只看任务（协调调度等交给员工的跟进，没有工单），或只看工单下的派工单；默认都看。",
)
@work_filters
def workorder_list(
    ticket, tasks, household, team_code, assignee, status, overdue, since, until, limit, offset,
    fmt,
):  # fmt: skip
    """列出派工单与任务（最早派发的在前）。"""
    emit_work(
        fmt, ticket=ticket, tasks=tasks, household=household, team=team_code, assignee=assignee,
        status=status, overdue=overdue, since=since, until=until, limit=limit, offset=offset,
    )  # fmt: skip


@workorder.command("show")
@work_order_argument()
@SHOW_FORMAT
def workorder_show(number: str, fmt: str) -> None:
    """显示一张派工单，包括退回原因与接续关系。"""
    from crm.plugins.service.dispatch import show_work_order

    with get_app().session() as session:
        record = show_work_order(session, number)
    emit_record(record, fmt, SHOW_LABELS)


@workorder.command("create")
@ticket_argument("ticket")
@click.option(
    "--kind",
    metavar="派工类型",
    required=True,
    help="类型：remedial（补救措施）、corrective（纠正措施）、repair（维修）、revisit（回访）。",
)
@click.option("--description", metavar="文字", required=True, help="派工内容：做什么。")
@click.option("--due", metavar="时间", help="完成时限，如 2026-04-28 18:00（业务时区）。")
@team_option("--team", "team_code", help="派给哪个团队（默认按工单类别）。")
@staff_option("--assignee", help="派给谁（默认该团队在办件数最少的一线人员）。")
@click.option(
    "--skill",
    metavar="技能",
    help="所需技能（如 木工）：先派给有此技能的人，再看在办件数；无人具备时交主管。",
)
@at_option
@format_option
def workorder_create(
    ticket, kind, description, due, team_code, assignee, skill, at_text, fmt
) -> None:
    """为工单派发一张派工单。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import create_work_order
    from crm.plugins.service.tickets import get_ticket

    with get_app().session() as session, transaction(session):
        order = create_work_order(
            session,
            get_ticket(session, ticket),
            kind,
            description,
            due_at=_due(due),
            team_code=team_code,
            assignee_name=assignee,
            at=parse_at(at_text),
            skill=skill,
        )
        who = order.assignee.name if order.assignee else "待指派"
        text = f"已派工 {order.number} → {order.team.name}：{who}。"
        record = _order_record(session, order.number, text)
    emit_record(record, fmt, ORDER_LABELS)


@workorder.command("done")
@work_order_argument()
@click.option(
    "--result", metavar="文字", required=True, help="处理结果（回访派工单：客户的原话或意见）。"
)
@click.option("--csat", metavar="1-5", type=int, help="回访派工单：客户满意度 1-5 分（必填）。")
@click.option("--nps", metavar="0-10", type=int, help="回访派工单：推荐意愿 0-10 分。")
@click.option(
    "--aspect",
    metavar="名称=期望:体验",
    multiple=True,
    help="回访派工单：某方面的期望与体验，写成 名称=期望:体验。",
)
@click.option("--reopen", is_flag=True, help="回访派工单：客户不满意，重新处理工单。")
@click.option("--override", metavar="原因", help="回访派工单：客户不满意却不再处理，经理写明原因。")
@at_option
@format_option
def workorder_done(
    number: str, result: str, csat, nps, aspect, reopen, override, at_text, fmt: str
) -> None:
    """完成一张派工单：最后一张维修派工单完成即关闭报修单并派出 24 小时内的电话回访；
    回访派工单须登记客户满意度（经满意度监测记录）。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import complete_work_order
    from crm.plugins.service.ticket_commands import aspects_of

    revisit = None
    if csat is not None:
        revisit = {
            "csat": csat,
            "nps": nps,
            "aspects": aspects_of(aspect),
            "reopen_ticket": reopen,
            "override": override,
        }
    with get_app().session() as session, transaction(session):
        order = complete_work_order(session, number, result, at=parse_at(at_text), revisit=revisit)
        record = _order_record(session, order.number, f"派工单 {order.number} 已完成。")
    emit_record(record, fmt, ORDER_LABELS)


@workorder.command("return")
@work_order_argument()
@click.option(
    "--reason", metavar="原因", required=True, help="退回原因：为什么超出能力、业主需要什么。"
)
@at_option
@format_option
def workorder_return(number: str, reason: str, at_text, fmt: str) -> None:
    """超出本人能力的工作退回主管：原单标记退回，另派一张给主管。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import return_to_supervisor

    with get_app().session() as session, transaction(session):
        order = return_to_supervisor(session, number, reason, at=parse_at(at_text))
        text = f"{number} 已退回主管，新派工单 {order.number} → {order.assignee.name}。"
        record = _order_record(session, order.number, text)
    emit_record(record, fmt, ORDER_LABELS)


@workorder.command("forward")
@work_order_argument()
@staff_option("--to", "to_name", required=True, help="转派给谁（如有木工经验的同事）。")
@click.option("--note", metavar="文字", help="转派说明：要做什么、业主的要求。")
@at_option
@format_option
def workorder_forward(number: str, to_name: str, note, at_text, fmt: str) -> None:
    """主管把手上的派工单转派给能做的人：另派一张接续单，本单待转派工作完成后由主管关闭。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import forward_work_order

    with get_app().session() as session, transaction(session):
        order = forward_work_order(session, number, to_name, note, at=parse_at(at_text))
        text = f"{number} 已转派，新派工单 {order.number} → {order.assignee.name}。"
        record = _order_record(session, order.number, text)
    emit_record(record, fmt, ORDER_LABELS)


@workorder.command("arrive")
@work_order_argument()
@at_option
@format_option
def workorder_arrive(number: str, at_text, fmt: str) -> None:
    """登记处理人到场的时间（指标中的平均到场时长由此计算）。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import record_arrival

    with get_app().session() as session, transaction(session):
        order = record_arrival(session, number, at=parse_at(at_text))
        record = _order_record(session, order.number, f"{order.number} 已登记到场。")
    emit_record(record, fmt, ORDER_LABELS)


# --- repairs ----------------------------------------------------------------------------------


@click.group()
def repair() -> None:
    """报修：保修判断、开工前报价、派工、完工收费签字与回访。"""


@repair.command("items")
@paging(None)
@format_option
def repair_items(limit, offset, fmt: str) -> None:
    """列出维修项目及保修期（自交房日起，按月计）与依据。"""
    from crm.core.paging import window
    from crm.plugins.service.repairs import list_items

    with get_app().session() as session:
        rows = window(list_items(session), limit, offset)
    emit(
        rows,
        fmt,
        [
            ("code", "代码"),
            ("label", "项目"),
            ("months", "保修期(月)"),
            ("statutory_months", "法定最低(月)"),
            ("basis", "依据"),
        ],
    )


@repair.command("period")
@argument("item", "维修项目")
@argument("months", "月数", type=click.IntRange(0))
@format_option
def repair_period(item: str, months: int, fmt: str) -> None:
    """延长某个维修项目的保修期（月）；不得短于法定最低（经理、管理员可操作）。"""
    from crm.core.db import transaction
    from crm.plugins.service.repairs import WARRANTY_ITEMS, item_code, set_warranty_months

    with get_app().session() as session, transaction(session):
        months = set_warranty_months(session, item, months)
    found = WARRANTY_ITEMS[item_code(item)]
    record = {
        "message": f"{found.label}的保修期已设为 {months} 个月。",
        "item": found.code,
        "label": found.label,
        "months": months,
        "statutory_months": found.months,
    }
    emit_record(record, fmt, PERIOD_LABELS)


@repair.command("check")
@ticket_argument("ticket")
@click.option(
    "--item",
    metavar="维修项目",
    required=True,
    help="维修项目（代码或名称），见 crm repair items。",
)
@click.option("--chargeable", metavar="原因", help="虽在保修期内仍须收费的原因，如 人为损坏。")
@at_option
@format_option
def repair_check(ticket: str, item: str, chargeable: str | None, at_text, fmt: str) -> None:
    """判断报修单是否在保修期内：免费还是收费（开工前必须先判断；首次判断即首次响应与评估）。"""
    from crm.core.db import transaction
    from crm.plugins.service.repairs import check_warranty

    with get_app().session() as session, transaction(session):
        record = check_warranty(session, ticket, item, chargeable, at=parse_at(at_text))
    emit_record(record, fmt, REPAIR_LABELS)


@repair.command("quote")
@ticket_argument("ticket")
@click.option(
    "--rate",
    metavar="收费标准",
    required=True,
    help="向业主说明的收费标准，如 材料费 30 元/个，人工费 20 元/次。",
)
@at_option
@format_option
def repair_quote(ticket: str, rate: str, at_text, fmt: str) -> None:
    """收费维修开工前登记已告知业主的收费标准。"""
    from crm.core.db import transaction
    from crm.plugins.service.repairs import quote_repair

    with get_app().session() as session, transaction(session):
        record = quote_repair(session, ticket, rate, at=parse_at(at_text))
    emit_record(record, fmt, REPAIR_LABELS)


@repair.command("start")
@ticket_argument("ticket")
@team_option("--team", "team_code", help="派给哪个团队（默认按维修项目）。")
@staff_option("--assignee", help="派给谁（默认在办件数最少的一线人员）。")
@click.option("--due", metavar="时间", help="完成时限，如 2026-04-28 18:00（业务时区）。")
@click.option(
    "--skill",
    metavar="技能",
    help="所需技能（如 木工）：先派给有此技能的人，再看在办件数；无人具备时交主管。",
)
@at_option
@format_option
def repair_start(ticket: str, team_code, assignee, due, skill, at_text, fmt) -> None:
    """派出维修派工单（报修单进入维修）；收费维修未登记收费标准时拒绝开工。"""
    from crm.core.db import transaction
    from crm.plugins.service.repairs import start_repair

    with get_app().session() as session, transaction(session):
        order = start_repair(
            session,
            ticket,
            team_code=team_code,
            assignee_name=assignee,
            due_at=_due(due),
            at=parse_at(at_text),
            skill=skill,
        )
        who = order.assignee.name if order.assignee else "待指派"
        text = f"已派出维修 {order.number} → {order.team.name}：{who}。"
        record = _order_record(session, order.number, text)
    emit_record(record, fmt, ORDER_LABELS)


@repair.command("complete")
@ticket_argument("ticket")
@click.option("--result", metavar="文字", required=True, help="维修结果。")
@click.option("--fee", metavar="金额", help="实收费用（元）；收费维修必填。")
@click.option("--signed-by", metavar="姓名", help="在收费记录上签字的业主姓名；收费维修必填。")
@at_option
@format_option
def repair_complete(
    ticket: str, result: str, fee: str | None, signed_by, at_text, fmt: str
) -> None:
    """完工：收费维修须登记费用并由业主签字；报修单随之关闭，并派出 24 小时内的电话回访。"""
    from crm.core.db import transaction
    from crm.plugins.service.repairs import complete_repair

    with get_app().session() as session, transaction(session):
        record = complete_repair(
            session, ticket, result, fee_amount=fee, signed_by=signed_by, at=parse_at(at_text)
        )
    emit_record(record, fmt, REPAIR_LABELS)


def register(cli: click.Group) -> None:
    for command in (team, staff, workorder, repair):
        cli.add_command(command)
