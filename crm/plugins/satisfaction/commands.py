"""The satisfaction commands: `crm survey record/list`, `crm satisfaction report/warnings`.

Each command parses, calls the library, renders; heavy imports stay inside the functions.
"""

from __future__ import annotations

import click

from crm.core.cliutil import (
    at_option,
    date_range,
    day_bound,
    emit,
    format_option,
    get_app,
    household_argument,
    household_option,
    paging,
    parse_at,
    project_option,
    team_option,
)
from crm.core.figures import SCORE
from crm.plugins.satisfaction.vocab import KINDS, STATUSES

SURVEY_COLUMNS = [
    ("id", "编号"),
    ("household", "客户编号"),
    ("kind", "类型"),
    ("ticket", "登记号"),
    ("taken_at", "时间"),
    ("csat", "满意度"),
    ("nps", "推荐意愿"),
    ("aspects", "各方面（期望/体验/差距）"),
    ("mean_gap", "平均差距", SCORE),
    ("comment", "意见"),
    ("taken_by", "调查人"),
]
SURVEY_DROP = ("taken_by", "ticket", "aspects")  # a narrow terminal keeps the comment
WARNING_COLUMNS = [
    ("id", "编号"),
    ("kind", "类型", KINDS),
    ("household", "客户编号"),
    ("project", "项目"),
    ("strength", "强度", SCORE),
    ("reason", "原因"),
    ("status", "状态", STATUSES),
    ("detected_at", "发现时间"),
    ("handed_at", "转交时间"),
]


def _score(text: str | None, what: str) -> int | None:
    from crm.core.errors import CrmError

    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise CrmError(f"{what}应为整数，收到的是“{text}”。") from None


@click.group()
def survey() -> None:
    """满意度调查：登记定期调查与走访问卷，查看调查记录（工单回访由服务处理自动登记）。"""


@survey.command("record")
@household_argument("household_code")
@click.option(
    "--kind",
    type=click.Choice(["periodic", "visit"]),
    default="periodic",
    show_default=True,
    help="调查类型：periodic 定期调查，visit 走访问卷。",
)
@click.option("--csat", metavar="1-5", help="满意度评分，1（很不满意）到 5（很满意）。")
@click.option("--nps", metavar="0-10", help="推荐意愿，0（绝不推荐）到 10（一定推荐）。")
@click.option(
    "--aspect",
    "aspects",
    multiple=True,
    metavar="名称=期望:体验",
    help="某方面的期望与体验（各 1-10 分），如 维修质量=8:6；可多次给出。",
)
@click.option("--comment", metavar="文字", help="客户的意见与建议。")
@project_option(help="所属项目名称（默认取客户家庭的项目）。")
@team_option(help="涉及的班组编码。")
@click.option("--category", metavar="类别", help="涉及的类别：工程、设计、销售管理、服务。")
@click.option("--channel", metavar="渠道", help="调查渠道：电话、来访、信函、传真、网络。")
@at_option
@format_option
def survey_record(
    household_code, kind, csat, nps, aspects, comment, project, team, category, channel, at_text,
    fmt,
) -> None:  # fmt: skip
    """登记一份定期调查或走访问卷（满意度 = 体验 − 期望，按方面保存）。"""
    from crm.core.db import transaction
    from crm.plugins.satisfaction.surveys import parse_aspect, record_questionnaire, survey_row

    pairs = dict(parse_aspect(text) for text in aspects)
    if len(pairs) != len(aspects):
        from crm.core.errors import CrmError

        raise CrmError("同一个评价方面给出了多次：每个方面只填一次期望与体验。")
    app = get_app()
    with app.session() as session, transaction(session):
        recorded = record_questionnaire(
            session,
            household_code,
            kind,
            csat=_score(csat, "满意度评分（CSAT）"),
            nps=_score(nps, "推荐意愿（NPS）"),
            aspects=pairs,
            comment=comment,
            project=project,
            team=team,
            category=category,
            channel=channel,
            at=parse_at(at_text),
        )
        row = survey_row(recorded, household_code.strip())
    emit([row], fmt, SURVEY_COLUMNS)


@survey.command("list")
@household_option("--household", "household_code", help="只看某个客户家庭（客户编号）。")
@click.option(
    "--kind",
    metavar="调查类型",
    help="只看某类调查：revisit 工单回访、periodic 定期调查、visit 走访问卷。",
)
@date_range("调查日期")
@paging(50)
@format_option
def survey_list(household_code, kind, since, until, limit, offset, fmt) -> None:
    """按时间倒序列出满意度调查记录。"""
    from crm.plugins.satisfaction.surveys import list_surveys

    with get_app().session() as session:
        rows = list_surveys(session, household_code, kind, limit, offset, since, until)
    emit(rows, fmt, SURVEY_COLUMNS, drop=SURVEY_DROP)


@click.group()
def satisfaction() -> None:
    """满意度监测：按项目、班组、类别、月份、投诉原因的指标报表与客情预警。"""


@satisfaction.command("report")
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["project", "team", "category", "month", "cause"]),
    default="project",
    show_default=True,
    help="分组方式：项目、班组、类别、月份，或 cause 投诉原因（为什么投诉；一件投诉计入它的每个原因）。",
)
@click.option(
    "--since", metavar="日期", help="起始日期（含），如 2026-01-01；按工单受理与调查时间筛选。"
)
@click.option("--until", metavar="日期", help="截止日期（含），如 2026-04-30。")
@click.option(
    "--chart",
    "chart_dir",
    type=click.Path(file_okay=False),
    help="把月度趋势图与各项目对比图（PNG）写入此目录。",
)
@format_option
def satisfaction_report(group_by, since, until, chart_dir, fmt) -> None:
    """满意率、NPS、期望差距、及时率、关闭率、回访率与平均响应/到场/关闭时长（数据库内汇总）。"""
    from crm.plugins.satisfaction.kpis import COLUMNS, GROUPINGS, kpi_report

    start, end = day_bound(since, "起始日期"), day_bound(until, "截止日期", end=True)
    with get_app().session() as session:
        rows = kpi_report(session, group_by, start, end)
        charts = None
        if chart_dir:
            monthly = rows if group_by == "month" else kpi_report(session, "month", start, end)
            projects = rows if group_by == "project" else kpi_report(session, "project", start, end)
            charts = (monthly, projects)
    columns = [("label", GROUPINGS[group_by])] + COLUMNS[1:]
    if fmt == "table":
        emit(rows, fmt, columns)  # each figure in its kind's format (crm.core.figures)
    else:
        emit(rows, fmt, [("key", "key"), *columns])
    if charts is not None:
        from pathlib import Path

        from crm.plugins.satisfaction.charts import write_charts

        paths, note = write_charts(*charts, Path(chart_dir))
        for path in paths:
            click.echo(f"已生成图表：{path}", err=True)
        if note:
            click.echo(f"提示：{note}", err=True)


@satisfaction.command("warnings")
@click.option("--detect", is_flag=True, help="先分析最新的调查与服务记录，生成新的客情预警。")
@click.option(
    "--window",
    metavar="天数",
    type=click.IntRange(1),
    default=30,
    show_default=True,
    help="预警时间窗口（天）：重复投诉、承诺未兑现与最近调查都在此窗口内计。",
)
@click.option(
    "--status",
    type=click.Choice(["pending", "handed"]),
    help="只看某种状态：pending 待处理，handed 已转协调。",
)
@date_range("发现日期")
@paging(100)
@format_option
def satisfaction_warnings(detect, window, status, since, until, limit, offset, fmt) -> None:
    """客情预警：满意度下降、项目满意率下滑、重复投诉、承诺未兑现。"""
    from crm.core.db import transaction
    from crm.plugins.satisfaction.warnings import Thresholds, detect_warnings, list_warnings

    app = get_app()
    with app.session() as session:
        if detect:
            with transaction(session):
                new = detect_warnings(session, thresholds=Thresholds(window_days=window))
            click.echo(f"新增客情预警 {len(new)} 条。", err=True)
        rows = list_warnings(session, status, limit, offset, since, until)
    emit(rows, fmt, WARNING_COLUMNS)


def register(cli: click.Group) -> None:
    cli.add_command(survey)
    cli.add_command(satisfaction)
