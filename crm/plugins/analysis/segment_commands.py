"""`crm analysis segments|segment-runs|segment-show|segment-compare`: customer segments.

Each command parses, calls the library, renders; scikit-learn and the database load only
inside the functions, so `crm --help` stays fast.
"""

from __future__ import annotations

import click

from crm.core.cliutil import (
    argument,
    date_range,
    emit,
    format_option,
    get_app,
    paging,
    parse_day,
)
from crm.plugins.analysis.vocab import CHOSEN_BY

SEGMENT_COLUMNS = [
    ("name", "分群名称"),
    ("size", "户数"),
    ("share", "占比"),
    ("description", "区别于全体的特征"),
]
RUN_COLUMNS = [
    ("id", "分群编号"),
    ("run_at", "分群时间"),
    ("run_by", "操作人"),
    ("as_of", "截至日期"),
    ("households", "户数"),
    ("k", "分群数"),
    ("chosen_by", "分群数来源", CHOSEN_BY),
    ("silhouette", "轮廓系数"),
    ("model_version", "模型版本"),
]
MOVE_COLUMNS = [
    ("from_segment", "原分群"),
    ("to_segment", "新分群"),
    ("households", "户数"),
    ("share", "占原分群"),
    ("stayed", "未变"),
]
STEPS = {"features": "计算特征", "k_search": "选分群数", "final_fit": "全量拟合", "storing": "保存"}


def _run_line(run: dict) -> str:
    """One sentence on how the number of segments was decided."""
    from crm.core.render import cell_text

    silhouette = "无" if run["silhouette"] is None else f"{run['silhouette']:.3f}"
    head = (
        f"分群编号 {run['id']}（{cell_text(run['run_at'])}，截至 {run['as_of']}，"
        f"{run['households']:,} 户，模型第 {run['model_version']} 版）："
    )
    if run["chosen_by"] == "given":
        return head + f"分 {run['k']} 群（指定），轮廓系数 {silhouette}。"
    tried = "，".join(f"k={k} {score:.3f}" for k, score in run["tried"].items())
    return head + f"按轮廓系数选定分 {run['k']} 群（{silhouette}）；各分群数的轮廓系数：{tried}。"


def _show(report, fmt: str) -> None:
    from crm.core.render import json_record, percent, to_json

    if fmt == "json":
        run = json_record(report.run, RUN_COLUMNS)
        click.echo(to_json({"run": run, "segments": report.segments}))
        return
    rows = report.segments
    if fmt == "table":
        rows = [{**row, "share": percent(row["share"])} for row in rows]
    emit(rows, fmt, SEGMENT_COLUMNS)
    # The table is for reading, so the choice of k follows it; beside CSV it goes to stderr.
    click.echo(("\n" if fmt == "table" else "") + _run_line(report.run), err=fmt == "csv")


@click.command("segments")
@click.option(
    "--k", type=click.IntRange(2, 20), help="分群数（2–20）；不给时按轮廓系数在 2 到 --max-k 间选。"
)
@click.option("--as-of", metavar="日期", help="截至日期（不含当天），如 2026-06-01；默认今天。")
@click.option(
    "--max-k",
    type=click.IntRange(2, 20),
    default=8,
    show_default=True,
    help="按轮廓系数选分群数时最多试到几群。",
)
@format_option
def analysis_segments(k, as_of, max_k, fmt) -> None:
    """客户分群：标准化 k 均值，分群数按轮廓系数选定（或用 --k 指定），每群用区别于全体的特征描述。

    特征：距最近购买天数、购买次数、购买总额、客户时长、投诉次数、满意度差距、推荐户数、会员。

    只看截至 --as-of 前一天已购买的客户家庭。分群结果连同日期、每户所属分群和模型一起保存。

    用 segment-show 查看、segment-compare 比较两次分群。
    """
    from crm.core.db import transaction
    from crm.plugins.analysis.features import FEATURES
    from crm.plugins.analysis.segments import run_segments, segment_report

    day = parse_day(as_of, "截至日期")
    click.echo("正在计算客户特征并分群……", err=True)
    with get_app().session() as session, transaction(session):
        result = run_segments(session, as_of=day, k=k, k_range=range(2, max_k + 1))
        report = segment_report(session, result.run.id)
    if result.missing:
        missing = "、".join(FEATURES[name] for name in result.missing)
        click.echo(f"注意：没有插件提供{missing}，这些特征按 0 计。", err=True)
    seconds = "，".join(f"{STEPS[step]} {value:.1f} 秒" for step, value in result.timings.items())
    click.echo(f"用时：{seconds}。", err=True)
    _show(report, fmt)


@click.command("segment-runs")
@date_range("分群日期", "2026-01-01")
@paging(100)
@format_option
def analysis_segment_runs(since, until, limit, offset, fmt) -> None:
    """列出保存过的客户分群（最新在前）：时间、截至日期、户数、分群数及其来源、轮廓系数。"""
    from crm.plugins.analysis.segments import list_runs

    with get_app().session() as session:
        rows = list_runs(session, limit, offset, since, until)
    emit(rows, fmt, RUN_COLUMNS)


@click.command("segment-show")
@argument("run_id", "分群编号", type=int, required=False)
@format_option
def analysis_segment_show(run_id, fmt) -> None:
    """显示一次保存的客户分群（默认最新一次），不重新训练。分群编号见 segment-runs。"""
    from crm.plugins.analysis.segments import segment_report

    with get_app().session() as session:
        report = segment_report(session, run_id)
    _show(report, fmt)


@click.command("segment-compare")
@argument("older", "旧分群编号", type=int)
@argument("newer", "新分群编号", type=int)
@format_option
def analysis_segment_compare(older, newer, fmt) -> None:
    """比较两次分群（先旧后新）：多少户留在同名分群、多少户换了分群、新增与退出。"""
    from crm.core.render import percent, to_json
    from crm.plugins.analysis.segments import compare_runs

    with get_app().session() as session:
        comparison = compare_runs(session, older, newer)
    if fmt == "json":
        click.echo(to_json({"summary": comparison.summary, "moves": comparison.moves}))
        return
    rows = comparison.moves
    if fmt == "table":
        rows = [{**row, "share": percent(row["share"])} for row in rows]
    emit(rows, fmt, MOVE_COLUMNS)
    s = comparison.summary
    line = (
        f"分群 {s['older']}（截至 {s['older_as_of']}，{s['older_households']:,} 户）→ "
        f"分群 {s['newer']}（截至 {s['newer_as_of']}，{s['newer_households']:,} 户）：两次都在的 "
        f"{s['in_both']:,} 户中 {s['stayed']:,} 户留在同名分群、{s['moved']:,} 户换了分群；"
        f"新增 {s['joined']:,} 户，退出 {s['left']:,} 户。"
    )
    click.echo(("\n" if fmt == "table" else "") + line, err=fmt == "csv")


def register(group: click.Group) -> None:
    for command in (
        analysis_segments,
        analysis_segment_runs,
        analysis_segment_show,
        analysis_segment_compare,
    ):
        group.add_command(command)
