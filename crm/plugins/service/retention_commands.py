"""Commands for the member club (会员俱乐部) and owner reward activities (业主回馈活动)."""

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
from crm.core.vocab import MEMBER_TIERS, label

TIER_HELP = "会员等级：standard（普通会员）、silver（银卡）、gold（金卡）、platinum（白金卡）。"
ACTIVITY_COLUMNS = [
    ("id", "编号"),
    ("name", "活动"),
    ("project", "项目"),
    ("held_at", "时间"),
    ("capacity", "名额"),
    ("signed_up", "报名户数"),
    ("attended", "出席户数"),
    ("cost", "费用(元)", MONEY),
]
# What an action did: the sentence first, then the record it touched.
CLUB_LABELS = [
    ("message", "结果"),
    ("code", "客户编号"),
    ("previous_tier", "原等级", MEMBER_TIERS),
    ("tier", "新等级", MEMBER_TIERS),
    ("at", "时间"),
    ("by", "经办人"),
    ("note", "说明"),
]
SIGNUP_LABELS = [
    ("message", "结果"),
    ("activity_id", "活动编号"),
    ("activity", "活动"),
    ("code", "客户编号"),
    ("signed_up_at", "报名时间"),
    ("attended", "出席"),
]


def _club_record(code: str, entry, message: str) -> dict:
    return {
        "message": message,
        "code": code,
        "previous_tier": entry.previous_tier,
        "tier": entry.tier,
        "at": entry.at,
        "by": entry.by,
        "note": entry.note,
    }


def _signup_record(session, signup, code: str, message: str) -> dict:
    from crm.plugins.service.retention import get_activity

    return {
        "message": message,
        "activity_id": signup.activity_id,
        "activity": get_activity(session, signup.activity_id).name,
        "code": code,
        "signed_up_at": signup.signed_up_at,
        "attended": signup.attended,
    }


@click.group()
def club() -> None:
    """会员俱乐部：入会、等级调整与会员名单（等级变更历史永久保留）。"""


@club.command("enrol")
@household_argument()
@click.option("--tier", metavar="等级", default="standard", show_default=True, help=TIER_HELP)
@click.option("--note", metavar="文字", help="说明，如 入会渠道。")
@format_option
def club_enrol(code: str, tier: str, note: str | None, fmt: str) -> None:
    """为客户家庭办理入会。"""
    from crm.core.db import transaction
    from crm.plugins.service.retention import enrol

    with get_app().session() as session, transaction(session):
        entry = enrol(session, code, tier, note)
        text = f"{code} 已入会，等级：{label(MEMBER_TIERS, entry.tier)}。"
        record = _club_record(code, entry, text)
    emit_record(record, fmt, CLUB_LABELS)


@club.command("tier")
@household_argument()
@argument("tier", "等级")
@click.option("--note", metavar="原因", help="调整原因，如 年度消费升级。")
@format_option
def club_tier(code: str, tier: str, note: str | None, fmt: str) -> None:
    """调整会员的等级（standard、silver、gold、platinum）；设为 none（非会员）即退会。"""
    from crm.core.db import transaction
    from crm.plugins.service.retention import change_tier

    with get_app().session() as session, transaction(session):
        entry = change_tier(session, code, tier, note)
        old, new = label(MEMBER_TIERS, entry.previous_tier), label(MEMBER_TIERS, entry.tier)
        text = f"{code} 的会员等级：{old} → {new}。"
        record = _club_record(code, entry, text)
    emit_record(record, fmt, CLUB_LABELS)


@club.command("list")
@click.option("--tier", metavar="等级", help="只看某个等级。")
@project_option(help="只看某个项目（项目全名）。")
@household_option(help="改为显示这一户的等级变更历史。")
@paging(50)
@format_option
def club_list(tier, project, household, limit, offset, fmt) -> None:
    """列出当前会员；给出 --household 时列出该户的入会与等级变更历史。"""
    from crm.core.paging import window
    from crm.plugins.service.retention import club_history, list_members

    with get_app().session() as session:
        if household:
            rows = window(club_history(session, household), limit, offset)
            columns = [
                ("code", "客户编号"),
                ("at", "时间"),
                ("previous_tier", "原等级", MEMBER_TIERS),
                ("tier", "新等级", MEMBER_TIERS),
                ("by", "经办人"),
                ("note", "说明"),
            ]
        else:
            rows = list_members(session, tier=tier, project=project, limit=limit, offset=offset)
            columns = [
                ("code", "客户编号"),
                ("name", "客户名称"),
                ("project", "项目"),
                ("tier", "会员等级", MEMBER_TIERS),
                ("joined_at", "入会时间"),
                ("changed_at", "最近变更"),
                ("changes", "变更次数"),
            ]
    emit(rows, fmt, columns)


@click.group()
def activity() -> None:
    """业主回馈活动：新建、报名（每户一次，名额有限）与出席登记。"""


@activity.command("create")
@argument("name", "活动名称")
@click.option(
    "--at",
    "held_at",
    metavar="时间",
    required=True,
    help="活动时间，如 2026-09-20 14:00（业务时区）。",
)
@project_option(help="所属项目（项目全名）；不填为全公司活动。")
@click.option("--capacity", metavar="户数", type=click.IntRange(1), help="名额（户）；不填为不限。")
@click.option("--cost", metavar="金额", help="活动费用（元）。")
@click.option(
    "--fund", "from_fund", is_flag=True, help="费用从项目的一路同行基金列支（余额不足则不建）。"
)
@format_option
def activity_create(name: str, held_at: str, project, capacity, cost, from_fund, fmt: str) -> None:
    """新建一项业主回馈活动。"""
    from crm.core.db import transaction
    from crm.plugins.service.dispatch import parse_local_time
    from crm.plugins.service.fund import spend
    from crm.plugins.service.retention import create_activity, show_activity

    with get_app().session() as session, transaction(session):
        created = create_activity(
            session, name, parse_local_time(held_at), project=project, capacity=capacity, cost=cost
        )
        record = {"message": f"已新建活动 {created.id}：{created.name}。"}
        if from_fund:
            if created.cost is None:
                from crm.core.errors import CrmError

                raise CrmError("从基金列支须给出活动费用：请加 --cost。")
            entry = spend(session, kind="activity", activity_id=created.id, note=created.name)
            record["message"] += f"费用 {entry.amount:,.2f} 元已从一路同行基金列支。"
        record |= show_activity(session, created.id)
    del record["signups"]  # a new activity has none yet
    emit_record(record, fmt, [("message", "结果"), *ACTIVITY_COLUMNS])


@activity.command("list")
@project_option(help="只看某个项目（项目全名）。")
@date_range("活动日期")
@paging(50)
@format_option
def activity_list(project, since, until, limit, offset, fmt) -> None:
    """按时间倒序列出业主活动及报名、出席户数。"""
    from crm.plugins.service.retention import list_activities

    with get_app().session() as session:
        rows = list_activities(session, project, limit, offset, since, until)
    emit(rows, fmt, ACTIVITY_COLUMNS)


@activity.command("show")
@argument("activity_id", "活动编号", type=int)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
    help="输出格式：活动概况与报名名单，或一个 JSON 对象。",
)
def activity_show(activity_id: int, fmt: str) -> None:
    """显示一项活动及其报名、出席名单。"""
    from crm.core.render import render, to_json
    from crm.plugins.service.retention import show_activity

    with get_app().session() as session:
        record = show_activity(session, activity_id)
    if fmt == "json":
        click.echo(to_json(record))
        return
    render([record], "table", ACTIVITY_COLUMNS)
    click.echo()
    render(
        record["signups"],
        "table",
        [
            ("code", "客户编号"),
            ("name", "客户名称"),
            ("signed_up_at", "报名时间"),
            ("attended", "出席"),
        ],
    )


@activity.command("signup")
@argument("activity_id", "活动编号", type=int)
@household_argument()
@format_option
def activity_signup(activity_id: int, code: str, fmt: str) -> None:
    """客户家庭报名活动（每户一次，满额即止）。"""
    from crm.core.db import transaction
    from crm.plugins.service.retention import sign_up

    with get_app().session() as session, transaction(session):
        signup = sign_up(session, activity_id, code)
        record = _signup_record(session, signup, code, f"{code} 已报名活动 {activity_id}。")
    emit_record(record, fmt, SIGNUP_LABELS)


@activity.command("attend")
@argument("activity_id", "活动编号", type=int)
@household_argument()
@click.option("--absent", is_flag=True, help="登记为缺席（默认登记出席）。")
@format_option
def activity_attend(activity_id: int, code: str, absent: bool, fmt: str) -> None:
    """登记已报名的客户家庭是否出席活动。"""
    from crm.core.db import transaction
    from crm.plugins.service.retention import record_attendance

    with get_app().session() as session, transaction(session):
        signup = record_attendance(session, activity_id, code, attended=not absent)
        text = f"已登记 {code} {'缺席' if absent else '出席'}活动 {activity_id}。"
        record = _signup_record(session, signup, code, text)
    emit_record(record, fmt, SIGNUP_LABELS)


def register(cli: click.Group) -> None:
    for command in (club, activity):
        cli.add_command(command)
