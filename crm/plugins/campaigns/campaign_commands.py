"""The `crm campaign` commands: referral and loyalty campaigns, their runs, outreach lists and
contact attempts, and the 6+2 lifecycle touchpoints.

Each command parses, calls the library (campaigns.py, lifecycle.py), renders; heavy imports
stay inside the functions so `crm --help` stays fast.
"""

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
    household_argument,
    paging,
    parse_at,
    project_option,
)

# A campaign by its code, and one of its runs by number, as crm campaign list and report show.
CAMPAIGN = argument("code", "活动编号")
RUN = argument("run_id", "执行编号", type=int)


def _moment(text: str | None):
    from crm.plugins.campaigns.campaigns import parse_local_time

    return parse_local_time(text) if text else None


@click.group()
def campaign() -> None:
    """营销活动：老带新与一路同行活动的目标、排期、外呼名单、联系记录与成效；6+2 生命周期触点。"""


@campaign.command("list")
@paging(None)
@format_option
def campaign_list(limit, offset, fmt: str) -> None:
    """列出全部营销活动及其排期和执行次数。"""
    from crm.plugins.campaigns.campaigns import CAMPAIGN_COLUMNS, list_campaigns

    with get_app().session() as session:
        rows = list_campaigns(session, limit, offset)
    emit(rows, fmt, CAMPAIGN_COLUMNS)


@campaign.command("create")
@CAMPAIGN
@click.option("--name", metavar="活动名称", required=True, help="活动名称，如“2026 冬季老带新”。")
@click.option(
    "--kind",
    metavar="活动类型",
    required=True,
    help="活动类型：老带新（referral）或一路同行（loyalty）。",
)
@click.option(
    "--channel", metavar="渠道", required=True, help="联系渠道：电话、短信、微信、上门或信函。"
)
@click.option(
    "--template",
    metavar="话术",
    required=True,
    help="话术模板，可用占位符 {家庭} {业主} {项目} {编号} {活动}。",
)
@click.option(
    "--segment", "segments", metavar="分群名称", multiple=True, help="目标客户分群名称，可重复。"
)
@click.option("--min-propensity", metavar="评分", type=float, help="最低倾向评分（0-1），如 0.3。")
@click.option(
    "--propensity-target",
    metavar="倾向目标",
    help="倾向目标：buy_again（再次购买）或 refer（推荐新客）；默认随活动类型。",
)
@project_option("--project", "projects", multiple=True, help="目标项目名称，可重复。")
@click.option(
    "--stage",
    "stages",
    metavar="客户阶段",
    multiple=True,
    help="客户阶段，可重复：准客户、已签约未交房、交房一年内、业主、老业主。",
)
@click.option(
    "--quiet-days",
    metavar="天数",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="免打扰天数：这么多天内已列入本活动名单的客户不再列入（0 为不限）。",
)
@click.option("--at", metavar="时间", help="只执行一次的时间（本地时间），如 2026-12-01 09:00。")
@click.option(
    "--cron", metavar="表达式", help="cron 表达式（分 时 日 月 周），如“0 9 * * 1”为每周一 9:00。"
)
@click.option("--every", metavar="间隔", help="固定间隔，如 7d、12h、30m。")
@click.option(
    "--window", metavar="天数", type=int, default=90, show_default=True, help="归因窗口（天）。"
)
@format_option
def campaign_create(
    code, name, kind, channel, template, segments, min_propensity, propensity_target,
    projects, stages, quiet_days, at, cron, every, window, fmt,
) -> None:  # fmt: skip
    """创建营销活动：目标规则、排期、渠道和话术模板（占位符在创建时检查）。"""
    from crm.core.db import transaction
    from crm.core.vocab import code_of
    from crm.plugins.campaigns.campaigns import (
        CAMPAIGN_LABELS,
        KINDS,
        campaign_dict,
        create_campaign,
        normalise_rule,
    )

    with get_app().session() as session, transaction(session):
        rule = normalise_rule(
            session,
            code_of(KINDS, kind, "活动类型"),
            segments,
            min_propensity,
            propensity_target,
            projects,
            stages,
            quiet_days,
        )
        created = create_campaign(
            session, code, name, kind, channel, template, rule, at, cron, every, window
        )
        record = campaign_dict(session, created)
    if created.schedule_kind:
        click.echo("排期已保存：crm scheduler run 启动或同步后按时执行。", err=True)
    emit_record(record, fmt, CAMPAIGN_LABELS)


@campaign.command("show")
@CAMPAIGN
@format_option
def campaign_show(code: str, fmt: str) -> None:
    """查看一个活动的目标规则、排期、话术和执行情况。"""
    from crm.plugins.campaigns.campaigns import CAMPAIGN_LABELS, campaign_dict, get_campaign

    with get_app().session() as session:
        record = campaign_dict(session, get_campaign(session, code))
    emit_record(record, fmt, CAMPAIGN_LABELS)


@campaign.command("pause")
@CAMPAIGN
@click.option("--resume", is_flag=True, help="恢复已暂停的活动排期。")
@format_option
def campaign_pause(code: str, resume: bool, fmt: str) -> None:
    """暂停（或用 --resume 恢复）活动的定时执行；手动执行不受影响。"""
    from crm.core.db import transaction
    from crm.plugins.campaigns.campaigns import CAMPAIGN_LABELS, campaign_dict, set_active

    with get_app().session() as session, transaction(session):
        record = campaign_dict(session, set_active(session, code, resume))
    emit_record(record, fmt, CAMPAIGN_LABELS)


@campaign.command("run")
@CAMPAIGN
@click.option(
    "--batch-size",
    metavar="户数",
    type=int,
    default=500,
    show_default=True,
    help="每批写入并提交的户数。",
)
@format_option
def campaign_run(code: str, batch_size: int, fmt: str) -> None:
    """执行活动，生成外呼名单；上次执行未完成时续跑同一次执行，不会重复联系。"""
    from crm.plugins.campaigns.campaigns import RUN_LABELS, run_campaign

    def progress(done: int, total: int) -> None:
        click.echo(f"已写入 {done}/{total} 户", err=True)

    with get_app().session() as session:
        result = run_campaign(session, code, batch_size=batch_size, progress=progress)
    emit_record(result.as_dict(), fmt, RUN_LABELS)


@campaign.command("report")
@CAMPAIGN
@date_range("执行开始日期")
@paging(100)
@format_option
def campaign_report(code: str, since, until, limit, offset, fmt: str) -> None:
    """活动成效：每次执行（先执行的在前）的名单户数、联系与触达、结果分布、归因的购买和推荐成交。

    成交归因看全部活动的全部执行；--since/--until、--limit/--offset 只决定显示哪几次执行。"""
    from crm.plugins.campaigns.campaigns import REPORT_COLUMNS
    from crm.plugins.campaigns.campaigns import campaign_report as build

    with get_app().session() as session:
        rows = build(session, code, limit, offset, since, until)
    if fmt != "json":
        for row in rows:
            row["outcomes"] = "、".join(f"{k} {v}" for k, v in row["outcomes"].items())
    emit(rows, fmt, REPORT_COLUMNS)


@campaign.command("contacts")
@RUN
@click.option("--outcome", metavar="结果", help="只看最新结果为此的客户，如 有意向。")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="导出外呼名单（.csv 或 .xlsx）；不写则输出到屏幕。",
)
@click.option("--mine", is_flag=True, help="只看分配给我的联系人。")
@paging(None, "户")
@format_option
def campaign_contacts(
    run_id: int,
    outcome: str | None,
    output: str | None,
    mine: bool,
    limit: int | None,
    offset: int,
    fmt: str,
) -> None:
    """一次执行的外呼名单，倾向评分高的在前：负责人、话术、联系次数和最新结果。

    经理、管理员看到完整电话；外呼负责人看到分配给自己的客户的完整电话（记入审计日志），
    其余一律打码。"""
    from pathlib import Path

    from crm.core.db import transaction
    from crm.plugins.campaigns.campaigns import CONTACT_COLUMNS, export_contacts, run_contacts

    with get_app().session() as session, transaction(session):
        if output:
            count = export_contacts(session, run_id, Path(output), outcome, mine)
            click.echo(f"已导出 {count} 户到 {output}。", err=True)
            return
        rows = run_contacts(session, run_id, outcome, mine, limit, offset)
    emit(rows, fmt, CONTACT_COLUMNS)


@campaign.command("assign")
@RUN
@argument("callers", "外呼负责人", nargs=-1, required=True)
@click.option(
    "--reassign", is_flag=True, help="已分配的联系人也重新分配（默认只分配尚无负责人的）。"
)
@format_option
def campaign_assign(run_id: int, callers: tuple[str, ...], reassign: bool, fmt: str) -> None:
    """把一次执行的外呼名单分给外呼负责人（经理、管理员）：按倾向评分从高到低轮流分配，
    每人户数相同、好坏相当。负责人随后能看到自己客户的完整电话。

    在 PostgreSQL 上负责人须是员工的数据库登录名，如 crm campaign assign 12 zhangsan lisi。"""
    from crm.core.db import transaction
    from crm.plugins.campaigns.campaigns import assign_callers

    with get_app().session() as session, transaction(session):
        given = assign_callers(session, run_id, callers, reassign)
    rows = [{"caller": name, "given": count} for name, count in given.items()]
    emit(rows, fmt, [("caller", "外呼负责人"), ("given", "本次分配户数")])


@campaign.command("contact")
@RUN
@household_argument("household")
@click.option(
    "--outcome",
    metavar="结果",
    required=True,
    help="联系结果：已接通、未接通、拒绝、有意向或已预约。",
)
@click.option("--note", metavar="文字", help="客户的回应。")
@at_option
@format_option
def campaign_contact(
    run_id: int, household: str, outcome: str, note: str | None, at_text: str | None, fmt: str
) -> None:
    """记录一次联系尝试及客户回应。"""
    from crm.core.db import transaction
    from crm.plugins.campaigns.campaigns import ATTEMPT_LABELS, attempt_dict, record_attempt

    with get_app().session() as session, transaction(session):
        attempt, code = record_attempt(session, run_id, household, outcome, note, parse_at(at_text))
        record = attempt_dict(attempt, run_id, code)
    emit_record(record, fmt, ATTEMPT_LABELS)


@campaign.command("touchpoints")
@click.option(
    "--due-within",
    metavar="天数",
    type=int,
    default=7,
    show_default=True,
    help="列出今天起多少天内到期的触点（含逾期）。",
)
@click.option("--kind", metavar="触点类型", help="只看一种触点，如 嘘寒问暖、承担责任、一路同行。")
@click.option("--all", "include_done", is_flag=True, help="也列出已完成的触点。")
@paging(None)
@format_option
def campaign_touchpoints(
    due_within: int, kind: str | None, include_done: bool, limit, offset, fmt: str
) -> None:
    """6+2 生命周期触点待办：到期日、话术和联系方式（电话按角色脱敏）。"""
    from crm.core.db import transaction
    from crm.plugins.campaigns.lifecycle import TOUCHPOINT_COLUMNS, list_touchpoints

    with get_app().session() as session, transaction(session):
        rows = list_touchpoints(session, due_within, kind, include_done, limit=limit, offset=offset)
    emit(rows, fmt, TOUCHPOINT_COLUMNS)


@campaign.command("plan-touchpoints")
@click.option(
    "--days",
    metavar="天数",
    type=int,
    default=30,
    show_default=True,
    help="安排今天起多少天内到期的触点。",
)
@click.option(
    "--kind", "kinds", metavar="触点类型", multiple=True, help="只安排这些触点类型，可重复。"
)
@click.option(
    "--warranty-months", metavar="月数", type=int, help="保修期（月），保存后定时任务也按此安排。"
)
@click.option(
    "--notice-days", metavar="天数", type=int, help="保修到期前多少天通知，保存后同样生效。"
)
@format_option
def campaign_plan_touchpoints(
    days: int,
    kinds: tuple[str, ...],
    warranty_months: int | None,
    notice_days: int | None,
    fmt: str,
) -> None:
    """按各户的签约、交房等日期安排生命周期触点；重复安排不会产生重复触点。"""
    import datetime as dt

    from crm.core.clock import local_today
    from crm.core.db import transaction
    from crm.core.errors import CrmError
    from crm.plugins.campaigns.lifecycle import (
        KIND_NAMES,
        kind_code,
        plan_touchpoints,
        set_warranty_settings,
    )

    if days < 0:
        raise CrmError("--days 不能为负数：请给出 0 或更多天。")
    with get_app().session() as session, transaction(session):
        set_warranty_settings(session, warranty_months, notice_days)
        until = local_today() + dt.timedelta(days=days)
        added = plan_touchpoints(session, until, kinds=tuple(kind_code(k) for k in kinds) or None)
    rows = [{"kind": KIND_NAMES[k], "added": n} for k, n in added.items()]
    emit(rows, fmt, [("kind", "触点"), ("added", "新增")])


@campaign.command("touchpoint-done")
@argument("touchpoint_id", "触点编号", type=int)
@click.option(
    "--outcome",
    metavar="结果",
    required=True,
    help="联系结果：已接通、未接通、拒绝、有意向或已预约。",
)
@click.option("--note", metavar="文字", help="客户的回应。")
@at_option
@format_option
def campaign_touchpoint_done(
    touchpoint_id: int, outcome: str, note: str | None, at_text: str | None, fmt: str
) -> None:
    """登记一个生命周期触点已完成及其结果。"""
    from crm.core.db import transaction
    from crm.core.vocab import label
    from crm.plugins.campaigns.campaigns import OUTCOMES
    from crm.plugins.campaigns.lifecycle import KIND_NAMES, record_touchpoint

    with get_app().session() as session, transaction(session):
        point = record_touchpoint(session, touchpoint_id, outcome, note, parse_at(at_text))
        record = {
            "id": point.id,
            "kind": KIND_NAMES[point.kind],
            "due_on": point.due_on,
            "done_at": point.done_at,
            "done_by": point.done_by,
            "outcome": label(OUTCOMES, point.outcome),
            "note": point.note,
        }
    emit_record(
        record,
        fmt,
        [("id", "编号"), ("kind", "触点"), ("due_on", "到期日"), ("done_at", "完成时间"),
         ("done_by", "登记人"), ("outcome", "结果"), ("note", "客户回应")],
    )  # fmt: skip


def register(cli: click.Group) -> None:
    cli.add_command(campaign)
