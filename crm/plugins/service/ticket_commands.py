"""Commands for tickets (工单) through their steps, and for the SLA policies. Each parses,
calls the library in one transaction, renders; heavy imports happen inside the commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    household_option,
    paging,
    parse_at,
    project_option,
    team_option,
)
from crm.core.errors import CrmError
from crm.core.figures import RATE
from crm.core.vocab import COMPLAINT_CAUSES
from crm.plugins.service.arguments import staff_argument, ticket_argument
from crm.plugins.service.rules import (
    CATEGORIES,
    CHANNELS,
    CHECK_FINDINGS,
    COMMITMENT_STATUS,
    ESCALATION_RULES,
    EVENT_LABELS,
    EXPECTATIONS,
    GROUP_PHASES,
    GROUP_STATUS,
    NEXT_STEPS,
    ORIGINS,
    SEVERITIES,
    STATUSES,
    TICKET_TYPES,
    WORK_KINDS,
    WORK_ORDER_STATUS,
)

LIST_COLUMNS = [
    ("number", "登记号"),
    ("type", "类型", TICKET_TYPES),
    ("status", "步骤", STATUSES),
    ("severity", "严重程度", SEVERITIES),
    ("category", "类别", CATEGORIES),
    ("household", "客户编号"),
    ("household_name", "客户"),
    ("team", "团队"),
    ("owner", "负责人"),
    ("level", "升级级别"),
    ("opened_at", "受理时间"),
    ("resolve_due_at", "解决时限"),
    ("overdue", "已超时"),
    ("breached", "曾超时"),
    ("summary", "摘要"),
]
# What a narrow terminal leaves out of the list first (the summary and the state stay).
LIST_DROP = ("breached", "level", "household", "category", "resolve_due_at", "severity", "team")
SHOW_LABELS = [
    ("number", "登记号"),
    ("type", "类型", TICKET_TYPES),
    ("origin", "来源", ORIGINS),
    ("channel", "渠道", CHANNELS),
    ("status", "当前步骤", STATUSES),
    ("next_steps", "下一步可以", NEXT_STEPS),
    ("household", "客户编号"),
    ("household_name", "客户"),
    ("unit", "房号"),
    ("summary", "摘要"),
    ("severity", "严重程度", SEVERITIES),
    ("category", "类别", CATEGORIES),
    ("suggestion", "模型建议"),
    ("followed", "是否采纳建议"),
    ("expectations", "客户期望", EXPECTATIONS),
    ("team", "团队"),
    ("owner", "负责人"),
    ("level", "升级级别"),
    ("group", "群诉"),
    ("reported_by", "受理人"),
    ("opened_at", "受理时间"),
    ("created_at", "登记时间"),
    ("first_response_at", "首次响应"),
    ("response_due_at", "响应时限"),
    ("resolve_due_at", "解决时限"),
    ("warned_at", "预警时间"),
    ("response_breached", "响应超时"),
    ("resolve_breached", "解决超时"),
    ("breached_at", "超时时间"),
    ("paused_minutes", "等待客户(分钟)"),
    ("replied_at", "回复时间"),
    ("closed_at", "关闭时间"),
    ("customer_confirmed", "客户确认"),
    ("result", "处理结果"),
    ("revisited_at", "回访时间"),
    ("completed_at", "反馈时间"),
    ("reopen_count", "重新处理次数"),
    ("root_cause", "根本原因"),
    ("corrective_action", "纠正措施"),
    ("causes", "投诉原因", COMPLAINT_CAUSES),
    ("arrived_at", "首次到场"),
]
OPTION_COLUMNS = [
    ("seq", "方案"),
    ("text", "内容"),
    ("offered_at", "提出时间"),
    ("offered_by", "提出人"),
    ("chosen", "客户选定"),
]
EVENT_COLUMNS = [
    ("at", "时间"),
    ("entered_at", "登记于"),
    ("actor", "操作人"),
    ("action", "动作", EVENT_LABELS),
    ("from", "从", STATUSES),
    ("to", "到", STATUSES),
    ("note", "说明"),
]
COMMITMENT_COLUMNS = [
    ("what", "承诺内容"),
    ("due_at", "期限"),
    ("promised_by", "承诺人"),
    ("status", "状态", COMMITMENT_STATUS),
    ("apology", "致歉"),
    ("reason", "原因"),
    ("remedy", "补救"),
]
ESCALATION_COLUMNS = [
    ("rule", "规则", ESCALATION_RULES),
    ("level", "级别"),
    ("to", "升级给"),
    ("fired_at", "时间"),
    ("note", "说明"),
]
WORK_ORDER_COLUMNS = [
    ("number", "派工单号"),
    ("kind", "类型", WORK_KINDS),
    ("assignee", "处理人"),
    ("status", "状态", WORK_ORDER_STATUS),
    ("due_at", "时限"),
    ("arrived_at", "到场"),
    ("result", "结果"),
]
# The lists of records in `ticket show`, in the order it shows them.
SHOW_SECTIONS = [
    ("处理记录", "events", EVENT_COLUMNS),
    ("承诺", "commitments", COMMITMENT_COLUMNS),
    ("升级", "escalations", ESCALATION_COLUMNS),
    ("派工单", "work_orders", WORK_ORDER_COLUMNS),
    ("提供给客户的方案", "options", OPTION_COLUMNS),
]
POLICY_COLUMNS = [
    ("ticket_type", "工单类型", TICKET_TYPES),
    ("severity", "严重程度", SEVERITIES),
    ("response_minutes", "首次响应(分钟)"),
    ("resolve_minutes", "解决(分钟)"),
    ("business_hours", "按工作时间"),
    ("warn_ratio", "预警比例", RATE),
]
GROUP_COLUMNS = [
    ("number", "群诉编号"),
    ("project", "项目"),
    ("building", "楼栋"),
    ("topic", "共同问题"),
    ("phase", "阶段", GROUP_PHASES),
    ("status", "状态", GROUP_STATUS),
    ("households", "户数"),
    ("owner", "第一负责人"),
    ("overdue_steps", "超期步骤"),
    ("detected_at", "发现时间"),
    ("tickets", "工单"),
]
SUGGEST_LABELS = [
    ("number", "登记号"),
    ("type", "类型"),
    ("summary", "摘要"),
    ("suggested_category", "建议类别"),
    ("category_confidence", "类别置信度"),
    ("suggested_severity", "建议严重程度"),
    ("severity_confidence", "严重程度置信度"),
    ("model_version", "模型版本"),
    ("chosen_category", "员工评定类别"),
    ("chosen_severity", "员工评定严重程度"),
    ("note", "说明"),
]
SHOW_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
    help="输出格式：逐项列出，或一个 JSON 对象。",
)
NOTE = click.option("--note", metavar="文字", help="本步骤的说明（做了什么、和客户谈了什么）。")


def _in_transaction(work: Callable[[Any], Any]) -> Any:
    """Run one command's work in one transaction; a concurrent change becomes a sentence."""
    from sqlalchemy.orm.exc import StaleDataError

    from crm.core.db import transaction

    try:
        with get_app().session() as session, transaction(session):
            return work(session)
    except StaleDataError:
        raise CrmError("工单刚被别人改过：请用 crm ticket show 查看最新情况后重试。") from None


def _brief(session, number: str) -> dict:
    from crm.plugins.service.tickets import ticket_brief

    return ticket_brief(session, number)


def _time(text: str | None):
    if not text:
        return None
    from crm.plugins.service.dispatch import parse_local_time

    return parse_local_time(text)


def _split(values: tuple[str, ...]) -> list[str]:
    parts = []
    for value in values:
        parts += [p.strip() for p in value.replace("，", ",").replace("、", ",").split(",")]
    return [p for p in parts if p]


def _causes(values: tuple[str, ...]) -> list[str]:
    """Causes given one per option or comma-separated; a label holding 、 stays whole."""
    from crm.core.vocab import COMPLAINT_CAUSES

    known = set(COMPLAINT_CAUSES) | set(COMPLAINT_CAUSES.values())
    parts = []
    for value in values:
        text = value.strip()
        if text in known:
            parts.append(text)
        else:
            parts += [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]
    return parts


def aspects_of(values: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    found = {}
    for value in values:
        name, _, scores = value.replace("＝", "=").replace("：", ":").partition("=")
        expectation, _, experience = scores.partition(":")
        try:
            found[name.strip()] = (int(expectation), int(experience))
        except ValueError:
            raise CrmError(
                f"方面评分“{value}”写法不对：请写成 名称=期望:体验，如 响应速度=8:6。"
            ) from None
        if not name.strip():
            raise CrmError(f"方面评分“{value}”缺少方面名称：请写成 响应速度=8:6。")
    return found


# --- tickets ----------------------------------------------------------------------------------


@click.group()
def ticket() -> None:
    """工单：投诉、报修、建议、咨询的受理、八步处理、时限与升级。"""


@ticket.command("open")
@household_argument("household")
@click.option(
    "--type",
    "ticket_type",
    metavar="工单类型",
    required=True,
    help="工单类型：complaint 投诉、repair 报修、suggestion 建议、enquiry 咨询。",
)
@click.option(
    "--channel",
    metavar="渠道",
    required=True,
    help="渠道：phone 电话、visit 来访、letter 信函、fax 传真、online 网络。",
)
@click.option("--summary", metavar="文字", required=True, help="客户反映的问题。")
@click.option("--unit", metavar="房号", help="房号：项目/楼栋/房号，或客户名下的房号如 1903。")
@click.option("--reported-by", metavar="姓名", help="受理人（默认为当前操作人）。")
@click.option(
    "--origin",
    metavar="来源",
    default="customer",
    show_default=True,
    help="来源：customer 客户、staff 员工发现、revisit_programme 四年之约、campaign 营销活动"
    "（投诉只能来自客户）。",
)
@at_option
@format_option
def ticket_open(
    household, ticket_type, channel, summary, unit, reported_by, origin, at_text, fmt
) -> None:
    """受理：为客户家庭登记一张工单（生成登记号并从来电时间开始计时）。"""
    from crm.plugins.service.tickets import open_ticket

    at = parse_at(at_text)

    def work(session):
        opened = open_ticket(
            session,
            household,
            ticket_type,
            channel,
            summary,
            unit=unit,
            reported_by=reported_by,
            origin=origin,
            at=at,
        )
        return _brief(session, opened.number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("show")
@ticket_argument()
@SHOW_FORMAT
def ticket_show(number, fmt) -> None:
    """查看一张工单：处理记录、承诺、升级与派工。"""
    from crm.plugins.service.classification import pending_suggestion
    from crm.plugins.service.tickets import show_ticket

    with get_app().session() as session:
        detail = show_ticket(session, number)
        hint = pending_suggestion(session, number)
    if hint is not None:  # not yet assessed: what the classifier suggests
        detail["suggestion"] = hint
    emit_record(detail, fmt, SHOW_LABELS, SHOW_SECTIONS)


@ticket.command("list")
@click.option(
    "--status",
    metavar="步骤",
    help="只看某一步骤，如 accepted、investigating，或 open 表示未关闭的。",
)
@click.option(
    "--type",
    "ticket_type",
    metavar="工单类型",
    help="只看某类工单：complaint、repair、suggestion、enquiry。",
)
@click.option("--overdue", is_flag=True, help="只看已超过时限、仍未解决的（值班台）。")
@click.option("--at-risk", is_flag=True, help="只看已到预警点、尚未超时的。")
@project_option(help="只看某个项目（项目名）。")
@team_option(help="只看某个团队（代码或名称）。")
@household_option(help="只看某个客户家庭（客户编号）的工单。")
@date_range("受理日期")
@paging(100)
@format_option
def ticket_list(
    status, ticket_type, overdue, at_risk, project, team, household, since, until, limit,
    offset, fmt,
) -> None:  # fmt: skip
    """列出工单，最紧急（时限最早）的在前；表格下方注明共多少条、显示了哪几条。"""
    from crm.plugins.service.tickets import list_tickets

    with get_app().session() as session:
        rows = list_tickets(
            session,
            status=status,
            overdue=overdue,
            at_risk=at_risk,
            project=project,
            team=team,
            ticket_type=ticket_type,
            limit=limit,
            household=household,
            offset=offset,
            since=since,
            until=until,
        )
    emit(rows, fmt, LIST_COLUMNS, drop=LIST_DROP)


@ticket.command("claim")
@ticket_argument()
@staff_argument()
@format_option
def ticket_claim(number, staff, fmt) -> None:
    """认领：把无人负责的工单交给某位员工（同时认领时只有一人成功）。"""
    from crm.plugins.service.tickets import claim

    def work(session):
        claim(session, number, staff)
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("reassign")
@ticket_argument()
@staff_argument()
@click.option(
    "--reason", metavar="原因", help="转交原因（写入处理记录与审计日志），如 休假、需工程部处理。"
)
@format_option
def ticket_reassign(number, staff, reason, fmt) -> None:
    """转交：把未关闭的工单交给另一位员工。经理、管理员可转交任何工单；其他人只能转交
    自己负责的，或自己作为主管（二级及以上）所在团队的工单。"""
    from crm.plugins.service.tickets import reassign

    def work(session):
        reassign(session, number, staff, reason)
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("step")
@ticket_argument()
@argument(
    "action", "操作", type=click.Choice(("confirm", "investigate", "pause", "resume", "reopen"))
)
@NOTE
@at_option
@format_option
def ticket_step(number, action, note, at_text, fmt) -> None:
    """推进一步：confirm 确认、investigate 调查、pause 等待客户、resume 恢复、reopen 重新处理。"""
    from crm.plugins.service.tickets import step

    def work(session):
        step(session, number, action, note=note, at=parse_at(at_text))
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("assess")
@ticket_argument()
@click.option(
    "--severity",
    metavar="严重程度",
    required=True,
    help="严重程度：general 一般、important 重要、hot 热点、major 重大。",
)
@click.option(
    "--category",
    metavar="类别",
    required=True,
    help="类别：engineering 工程、design 设计、sales_management 销售管理、service 服务。",
)
@click.option(
    "--expect",
    metavar="期望",
    multiple=True,
    help="客户期望（可多次或逗号分隔）：taken_seriously 被重视、respect 被尊重、fix_now 马上解决、"
    "compensation 补偿、punish 惩罚责任人、never_again 不再发生、be_heard 被倾听。",
)
@NOTE
@at_option
@format_option
def ticket_assess(number, severity, category, expect, note, at_text, fmt) -> None:
    """评估：定严重程度、类别与客户期望，并按类别派给团队；同时列出模型建议，以员工的选择为准。"""
    from crm.plugins.service.classification import assessment_outcome
    from crm.plugins.service.tickets import assess

    def work(session):
        assess(session, number, severity, category, _split(expect), note=note, at=parse_at(at_text))
        return _brief(session, number) | assessment_outcome(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("suggest")
@ticket_argument()
@format_option
def ticket_suggest(number, fmt) -> None:
    """模型建议：按工单摘要给出建议的类别与严重程度（含置信度与模型版本），仅供评估参考。"""
    from crm.plugins.service.classification import ticket_suggestion

    with get_app().session() as session:
        found = ticket_suggestion(session, number)
    if fmt == "table":
        for key in ("category_confidence", "severity_confidence"):
            if found[key] is not None:
                found[key] = f"{found[key]:.0%}"
        found = {key: value for key, value in found.items() if value is not None}
    emit_record(found, fmt, SUGGEST_LABELS)


@ticket.command("reply")
@ticket_argument()
@click.option("--what", metavar="文字", help="承诺做什么（投诉必填）。")
@click.option("--due", metavar="时间", help="承诺在何时前完成，如 2026-04-28 12:00（投诉必填）。")
@click.option("--by", "promised_by", metavar="姓名", help="承诺人姓名：“我会……”（投诉必填）。")
@NOTE
@at_option
@format_option
def ticket_reply(number, what, due, promised_by, note, at_text, fmt) -> None:
    """回复客户：投诉的回复是一项承诺（做什么、何时前、由谁）。"""
    from crm.plugins.service.tickets import reply

    def work(session):
        reply(
            session,
            number,
            what=what,
            due_at=_time(due),
            promised_by=promised_by,
            note=note,
            at=parse_at(at_text),
        )
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("close")
@ticket_argument()
@click.option("--confirmed", is_flag=True, help="客户已确认问题解决（没有客户确认不能关闭）。")
@NOTE
@at_option
@format_option
def ticket_close(number, confirmed, note, at_text, fmt) -> None:
    """跟踪关闭：客户确认问题已解决后关闭工单。"""
    from crm.plugins.service.tickets import close

    def work(session):
        close(session, number, confirmed, note=note, at=parse_at(at_text))
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("revisit")
@ticket_argument()
@click.option("--csat", metavar="1-5", type=int, required=True, help="满意度 1-5 分。")
@click.option("--nps", metavar="0-10", type=int, help="推荐意愿 0-10 分。")
@click.option(
    "--aspect",
    metavar="名称=期望:体验",
    multiple=True,
    help="某方面的期望与体验（各 1-10 分），写成 名称=期望:体验，可多次。",
)
@click.option("--comment", metavar="文字", help="客户的原话或意见。")
@click.option("--reopen", is_flag=True, help="客户不满意（满意度 ≤ 2）时重新处理工单。")
@click.option(
    "--override",
    metavar="原因",
    help="客户不满意却不再处理时，经理写明原因（只有经理、管理员可以）。",
)
@click.option(
    "--channel",
    metavar="渠道",
    default="phone",
    show_default=True,
    help="回访渠道：phone、visit、online 等。",
)
@at_option
@format_option
def ticket_revisit(
    number, csat, nps, aspect, comment, reopen, override, channel, at_text, fmt
) -> None:
    """回访：记录客户的满意度与意见；客户不满意时须重新处理，或由经理写明不再处理的原因。"""
    from crm.plugins.service.tickets import revisit

    def work(session):
        revisit(
            session,
            number,
            csat,
            nps=nps,
            aspects=aspects_of(aspect),
            comment=comment,
            reopen_ticket=reopen,
            override=override,
            channel=channel,
            at=parse_at(at_text),
        )
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("feedback")
@ticket_argument()
@click.option("--root-cause", metavar="文字", required=True, help="根本原因。")
@click.option(
    "--action", "corrective_action", metavar="文字", required=True, help="防止再次发生的纠正措施。"
)
@click.option(
    "--cause",
    "causes",
    metavar="原因",
    multiple=True,
    help="客户投诉的原因（投诉必填，可多次给出或用逗号分隔）：期望未满足、积怨爆发、不闹不被重视、"
    "承诺未兑现、态度冷漠粗鲁、员工说法不一、处理不专业、产品与服务本身、工作失误或服务缺陷、"
    "预期过高与现实落差、房价高、关乎日常生活、客户专业、信息灵通（中文或代码）。",
)
@at_option
@format_option
def ticket_feedback(number, root_cause, corrective_action, causes, at_text, fmt) -> None:
    """信息反馈：记录根本原因、纠正措施与投诉原因，完成工单。"""
    from crm.plugins.service.tickets import feedback

    def work(session):
        feedback(
            session,
            number,
            root_cause,
            corrective_action,
            at=parse_at(at_text),
            causes=_causes(causes),
        )
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("contact")
@ticket_argument()
@click.option(
    "--channel",
    metavar="渠道",
    required=True,
    help="这次联系的渠道：phone、visit、letter、fax、online。",
)
@click.option("--note", metavar="文字", required=True, help="客户这次反映了什么。")
@click.option(
    "--severity", metavar="严重程度", help="同时调整严重程度：general、important、hot、major。"
)
@at_option
@format_option
def ticket_contact(number, channel, note, severity, at_text, fmt) -> None:
    """客户再次来电/来访：记在同一张工单上，可提高严重程度（时限不会因此延后，提高即升级）。"""
    from crm.plugins.service.tickets import record_contact

    def work(session):
        record_contact(session, number, channel, note, severity=severity, at=parse_at(at_text))
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("promise")
@ticket_argument()
@click.option("--what", metavar="文字", required=True, help="承诺做什么。")
@click.option("--due", metavar="时间", required=True, help="何时前完成，如 2026-04-28 12:00。")
@click.option("--by", "promised_by", metavar="姓名", required=True, help="承诺人姓名（“我会……”）。")
@at_option
@format_option
def ticket_promise(number, what, due, promised_by, at_text, fmt) -> None:
    """再作一项承诺（之前的承诺须已兑现或已致歉补救）。"""
    from crm.plugins.service.tickets import add_commitment

    def work(session):
        add_commitment(session, number, what, _time(due), promised_by, at=parse_at(at_text))
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("keep")
@ticket_argument()
@at_option
@format_option
def ticket_keep(number, at_text, fmt) -> None:
    """登记当前承诺已按时兑现。"""
    from crm.plugins.service.tickets import keep_commitment

    def work(session):
        keep_commitment(session, number, at=parse_at(at_text))
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("settle")
@ticket_argument()
@click.option("--apology", metavar="文字", required=True, help="向客户致歉的内容。")
@click.option("--reason", metavar="原因", required=True, help="未能兑现的原因。")
@click.option("--remedy", metavar="文字", required=True, help="补救措施。")
@at_option
@format_option
def ticket_settle(number, apology, reason, remedy, at_text, fmt) -> None:
    """承诺做不到或已逾期：致歉、说明原因、提出补救（之后才能再作承诺）。"""
    from crm.plugins.service.tickets import settle_broken_commitment

    def work(session):
        settle_broken_commitment(session, number, apology, reason, remedy, at=parse_at(at_text))
        return _brief(session, number)

    emit_record(_in_transaction(work), fmt, SHOW_LABELS)


@ticket.command("check")
@format_option
def ticket_check(fmt) -> None:
    """时限检查与升级：预警、记录超时、标记失信承诺、升级并发现群诉（值班台定时运行）。"""
    from crm.core.audit import current_user
    from crm.plugins.service.escalation import run_escalations
    from crm.plugins.service.sla import check_clocks

    def work(session):
        current_user(session).require("ticket.handle", "运行时限检查")
        found = check_clocks(session)
        found |= run_escalations(session)
        return found

    found = _in_transaction(work)
    rows = [
        {"kind": title, "count": len(found[key]), "numbers": "、".join(found[key])}
        for key, title in CHECK_FINDINGS.items()
    ]
    emit(rows, fmt, [("kind", "检查项"), ("count", "件数"), ("numbers", "登记号")])


@ticket.command("groups")
@click.option(
    "--status", metavar="状态", help="只看某一状态：open 处理中、closed 已结束、merged 已合并。"
)
@date_range("发现日期")
@paging(None)
@format_option
def ticket_groups(status, since, until, limit, offset, fmt) -> None:
    """列出群诉（同一楼栋或区域多户就同一问题投诉）；一起群诉用 crm ticket group 处理。"""
    from crm.plugins.service.groups import list_groups

    with get_app().session() as session:
        rows = list_groups(session, status, limit=limit, offset=offset, since=since, until=until)
    for row in rows:
        row["tickets"] = "、".join(row["tickets"])
    emit(rows, fmt, GROUP_COLUMNS)


# --- SLA policies -----------------------------------------------------------------------------


@click.group()
def sla() -> None:
    """服务时限：各类工单、各严重程度的首次响应与解决时限。"""


@sla.command("list")
@paging(None)
@format_option
def sla_list(limit, offset, fmt) -> None:
    """列出服务时限标准。"""
    from crm.core.paging import window
    from crm.plugins.service.sla import list_policies

    with get_app().session() as session:
        rows = list_policies(session)
    emit(window(rows, limit, offset), fmt, POLICY_COLUMNS)


@sla.command("set")
@argument("ticket_type", "工单类型")
@argument("severity", "严重程度")
@click.option("--response", metavar="分钟", type=int, help="首次响应时限（分钟）。")
@click.option("--resolve", metavar="分钟", type=int, help="解决时限（分钟）。")
@click.option(
    "--business-hours/--around-the-clock",
    default=None,
    help="按工作时间计时（设置 service.business_hours 与 service.business_days），或全天计时。",
)
@click.option("--warn-ratio", metavar="比例", type=float, help="用去多少比例的时间时预警，如 0.8。")
@format_option
def sla_set(ticket_type, severity, response, resolve, business_hours, warn_ratio, fmt) -> None:
    """设定某类工单、某严重程度的时限（经理、管理员）。"""
    from crm.plugins.service.sla import list_policies, set_policy

    def work(session):
        policy = set_policy(
            session,
            ticket_type,
            severity,
            response_minutes=response,
            resolve_minutes=resolve,
            business_hours=business_hours,
            warn_ratio=warn_ratio,
        )
        chosen = (policy.ticket_type, policy.severity)
        return [
            row for row in list_policies(session) if (row["ticket_type"], row["severity"]) == chosen
        ]

    emit(_in_transaction(work), fmt, POLICY_COLUMNS)


def register(cli: click.Group) -> None:
    for command in (ticket, sla):
        cli.add_command(command)
