"""Households: the tracking card, listing, search, adding and updating, members."""

from __future__ import annotations

from collections.abc import Callable

import click

from crm.commands import emit, format_option, get_app
from crm.core import vocab
from crm.core.cliutil import PROJECT, argument, household_argument, paging, project_option

LIST_COLUMNS = [
    ("code", "客户编号"),
    ("name", "客户名称"),
    ("status", "状态", vocab.HOUSEHOLD_STATUS),
    ("project", "项目"),
    ("member_tier", "会员等级", vocab.MEMBER_TIERS),
    ("owner", "业主"),
    ("units", "房产（项目/楼栋/房号）"),
]

# Options are plain text so the library's schema checks them and answers in Chinese; each is
# shown by what goes there.
PROFILE_OPTIONS = [
    ("--name", "name", "客户名称", "客户名称（家庭名称，如 张伟家）。"),
    ("--status", "status", "状态", "客户状态：准客户（prospective）或 业主（existing）。"),
    ("--project", "project", PROJECT, "所属项目名称（不存在时新建）；空字符串表示清除。"),
    ("--age", "age", "年龄", "年龄（户主）。"),
    (
        "--income-band",
        "income_band",
        "收入档次",
        "家庭年收入：10万以下、10-30万、30-50万、50-100万、100万以上。",
    ),
    ("--housing", "housing", "住房情况", "住房情况：租住、与家人同住、自有一套、自有多套。"),
    (
        "--education",
        "education",
        "教育程度",
        "教育程度：高中以下、高中/中专、大专、本科、研究生及以上。",
    ),
    ("--occupation", "occupation", "职业", "职业。"),
    ("--club-activities", "club_activities", "文字", "社团活动。"),
    (
        "--member-tier",
        "member_tier",
        "会员等级",
        "会员等级：非会员、普通会员、银卡、金卡、白金卡。",
    ),
    ("--note", "note", "文字", "备注。"),
]
CONSENTS = [
    ("consent_contact", "同意联系", "是否同意被联系。"),
    ("consent_marketing", "同意营销", "是否同意接收营销信息。"),
]


def profile_options(func: Callable) -> Callable:
    for opt, dest, shown, text in reversed(PROFILE_OPTIONS):
        func = click.option(opt, dest, metavar=shown, help=text)(func)
    for dest, _, text in reversed(CONSENTS):
        flag = dest.replace("_", "-")
        func = click.option(f"--{flag}/--no-{flag}", dest, default=None, help=text)(func)
    return func


def _listed(rows, fmt: str):
    """A household's units read as one 、-joined cell outside JSON."""
    if fmt == "json":
        return rows
    return rows.map(lambda row: row | {"units": "、".join(row["units"])})


def _given(values: dict) -> dict:
    return {key: value for key, value in values.items() if value is not None}


@click.group()
def household() -> None:
    """客户家庭：跟踪卡、列表、查找、新增与修改。"""


@household.command("show")
@household_argument()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
    help="输出格式：可读的跟踪卡，或同样内容的一个 JSON 对象。",
)
def show(code: str, fmt: str) -> None:
    """显示一户的客户资料跟踪卡（个人信息按角色脱敏）。"""
    from crm.core.card import build_card
    from crm.core.db import transaction
    from crm.core.render import to_json

    app = get_app()
    # The transaction commits the audit entry of any personal data shown in full.
    with app.session() as session, transaction(session):
        card = build_card(session, code)
    click.echo(to_json(card.as_dict()) if fmt == "json" else card.render(), nl=fmt == "json")


@household.command("list")
@project_option(help="只看某个项目（项目全名）。")
@click.option("--status", metavar="状态", help="只看某种状态：准客户、业主。")
@click.option(
    "--tier", metavar="会员等级", help="只看某个会员等级：非会员、普通会员、银卡、金卡、白金卡。"
)
@paging(50, "户")
@format_option
def list_(project, status, tier, limit, offset, fmt) -> None:
    """按客户编号列出客户家庭。"""
    from crm.core.households import list_households

    app = get_app()
    with app.session() as session:
        rows = list_households(
            session, project=project, status=status, tier=tier, limit=limit, offset=offset
        )
    emit(_listed(rows, fmt), fmt, LIST_COLUMNS)


@household.command("search")
@argument("query", "关键词", required=False)
@click.option("--name", metavar="姓名", help="按客户名称或成员姓名查找（包含即可）。")
@click.option(
    "--phone",
    metavar="号码",
    help="按电话查找（任一成员的手机或备用电话）：完整号码，或尾号 4 位。",
)
@click.option("--id-number", metavar="号码", help="按身份证号查找（完整 18 位）。")
@click.option(
    "--unit",
    metavar="房号",
    help="按房号查找：房号（如 12-1A、1903），或照工单、跟踪卡上的写法"
    "（如 翠湖花园/2栋/1903、2栋/1903、2栋1903）。",
)
@click.option(
    "--building",
    metavar="楼栋",
    help="按楼栋查找：项目/楼栋（如 翠湖花园/2栋），或只写楼栋（各项目的同名楼栋）。",
)
@project_option(help="按项目名称查找（包含即可）。")
@paging(50, "户")
@format_option
def search(query, name, phone, id_number, unit, building, project, limit, offset, fmt) -> None:
    """查找客户家庭：关键词可以是姓名、电话（任一成员的手机或备用电话，完整号码或尾号）、
    身份证号、房号（如 翠湖花园/2栋/1903）、楼栋（如 翠湖花园/2栋）或项目名。

    同时给出多个条件时，须全部满足。结果列出各户的项目、楼栋与房号。
    """
    from crm.core.db import transaction
    from crm.core.households import search_households

    app = get_app()
    # A search by phone or ID number writes its audit entry: commit it.
    with app.session() as session, transaction(session):
        rows = search_households(
            session,
            query,
            name=name,
            phone=phone,
            id_number=id_number,
            unit=unit,
            building=building,
            project=project,
            limit=limit,
            offset=offset,
        )
    emit(_listed(rows, fmt), fmt, LIST_COLUMNS)


@household.command("add")
@household_argument()
@profile_options
@click.option("--owner-name", metavar="姓名", help="同时登记业主（成员）的姓名。")
@click.option("--phone", metavar="号码", help="业主手机号（需同时给出 --owner-name）。")
@click.option("--id-number", metavar="号码", help="业主身份证号（需同时给出 --owner-name）。")
def add(code: str, owner_name, phone, id_number, **profile) -> None:
    """新增一户客户家庭，可同时登记业主。"""
    from crm.core.db import transaction
    from crm.core.households import add_household

    owner = _given({"name": owner_name, "phone": phone, "id_number": id_number})
    if owner and not owner_name:
        from crm.core.errors import CrmError

        raise CrmError("登记业主的电话或身份证号时，请同时用 --owner-name 给出业主姓名。")
    app = get_app()
    with app.session() as session, transaction(session):
        created = add_household(session, {"code": code, **_given(profile)}, owner or None)
        text = f"已新增客户家庭 {created.code}（{created.name}）"
        if owner:
            text += f"，业主 {owner_name}"
    click.echo(text + "。")


@household.command("update")
@household_argument()
@profile_options
def update(code: str, **profile) -> None:
    """修改一户的资料：只改给出的字段，旧值与新值写入审计日志。"""
    from crm.core.db import transaction
    from crm.core.households import update_household

    app = get_app()
    with app.session() as session, transaction(session):
        changed = update_household(session, code, _given(profile))
    if changed:
        click.echo(f"已更新 {code}：{'、'.join(changed)}。")
    else:
        click.echo(f"{code} 的资料与给出的值相同，未作修改。")


@household.group("member")
def member() -> None:
    """家庭成员。"""


@member.command("add")
@household_argument()
@click.option("--name", metavar="姓名", help="成员姓名（必填）。")
@click.option("--role", metavar="身份", help="成员身份：业主、共有人、家庭成员（默认）、租户。")
@click.option("--phone", metavar="号码", help="手机或座机号码。")
@click.option("--alt-phone", metavar="号码", help="备用电话。")
@click.option("--id-number", metavar="号码", help="身份证号（18 位）。")
def member_add(code: str, **fields) -> None:
    """为一户客户家庭添加成员；电话与身份证号加密保存。"""
    from crm.core.db import transaction
    from crm.core.households import add_member

    app = get_app()
    with app.session() as session, transaction(session):
        added = add_member(session, code, _given(fields))
        text = f"已为 {code} 添加成员 {added.name}。"
    click.echo(text)


def register(cli: click.Group) -> None:
    cli.add_command(household)
