"""`crm analysis propensity train|score|report` and `crm analysis models`.

Each command parses, calls the library, renders; scikit-learn and the database load only
inside the functions, so `crm --help` stays fast.
"""

from __future__ import annotations

import click

from crm.core.cliutil import (
    date_range,
    emit,
    emit_record,
    format_option,
    get_app,
    paging,
    parse_day,
)
from crm.plugins.analysis.vocab import MODEL_KINDS

TARGET_CHOICES = ("buy_again", "refer")
LIFT_COLUMNS = [
    ("decile", "十分位"),
    ("households", "户数"),
    ("positives", "实际发生户数"),
    ("rate", "发生率"),
    ("lift", "提升度"),
    ("captured", "累计捕获占比"),
    ("min_score", "最低分"),
    ("max_score", "最高分"),
]
REPORT_LABELS = [
    ("target", "预测目标", MODEL_KINDS),
    ("version", "模型版本"),
    ("estimator", "模型"),
    ("trained_at", "训练时间"),
    ("trained_by", "训练人"),
    ("cutoff", "截止日期"),
    ("months", "预测期（月）"),
    ("training_period", "训练期"),
    ("train_households", "训练户数"),
    ("train_positives", "训练期发生户数"),
    ("evaluation_period", "评估期"),
    ("households", "评估户数"),
    ("positives", "评估期发生户数"),
    ("base_rate", "基准发生率"),
    ("auc", "ROC AUC"),
    ("top_decile_lift", "前 10% 提升度"),
    ("missing_facts", "缺少的特征（按 0 计）"),
    ("scored", "已评分户数"),
    ("scored_as_of", "评分截至"),
]
SCORE_LABELS = [
    ("target", "预测目标", MODEL_KINDS),
    ("version", "模型版本"),
    ("as_of", "评分截至"),
    ("households", "评分户数"),
    ("mean_score", "平均分"),
    ("missing_facts", "缺少的特征（按 0 计）"),
]
BOUND_COLUMNS = [
    ("decile", "十分位"),
    ("households", "户数"),
    ("min_score", "最低分"),
    ("max_score", "最高分"),
]
MODEL_COLUMNS = [
    ("kind", "模型", MODEL_KINDS),
    ("version", "版本"),
    ("trained_at", "训练时间"),
    ("trained_by", "训练人"),
    ("cutoff", "截止日期"),
    ("horizon_months", "预测期（月）"),
    ("rows", "训练样本数"),
    ("main_metric", "主要指标"),
]
# The figure that says how good each kind of model is, first one found wins.
MAIN_METRICS = (("auc", "AUC"), ("accuracy", "准确率"), ("silhouette", "轮廓系数"))


def _lift_rows(rows: list[dict], fmt: str) -> list[dict]:
    from crm.core.render import percent

    if fmt != "table":
        return rows
    return [{**r, "rate": percent(r["rate"]), "captured": percent(r["captured"])} for r in rows]


def _show_report(result: dict, fmt: str) -> None:
    from crm.core.render import json_record, percent, to_json

    if fmt == "json":
        click.echo(to_json(json_record(result, REPORT_LABELS)))
        return
    if fmt == "csv":
        # The lift table is the data; the headline figures go to stderr.
        emit(result["lift"], fmt, LIFT_COLUMNS)
        click.echo(
            f"{MODEL_KINDS[result['target']]}模型第 {result['version']} 版：AUC {result['auc']:.3f}，"
            f"基准发生率 {result['base_rate']:.1%}。",
            err=True,
        )
        return
    shown = {**result, "base_rate": percent(result["base_rate"]), "auc": f"{result['auc']:.3f}"}
    emit_record(shown, fmt, REPORT_LABELS)
    click.echo("\n评估期按分数十等分的提升表（第 1 组为分数最高的 10%）：")
    emit(_lift_rows(result["lift"], fmt), fmt, LIFT_COLUMNS)


target_option = click.option(
    "--target",
    type=click.Choice(TARGET_CHOICES),
    required=True,
    help="预测目标：buy_again（预测期内再次购买）或 refer（预测期内推荐的新客成交）。",
)
version_option = click.option(
    "--version", metavar="版本", type=click.IntRange(1), help="模型版本（默认最新一版）。"
)


@click.group("propensity")
def propensity() -> None:
    """倾向模型：预测客户家庭再次购买或推荐新客成交的可能性，训练、评分与报告。"""


@propensity.command("train")
@target_option
@click.option(
    "--cutoff",
    metavar="日期",
    help="截止日期，如 2025-06-30：用此前的历史训练，用此后的预测期检验（默认今天往前推预测期）。",
)
@click.option(
    "--months",
    metavar="月数",
    type=click.IntRange(1, 60),
    default=12,
    show_default=True,
    help="预测期月数：在这么多个月内是否发生。",
)
@format_option
def propensity_train(target, cutoff, months, fmt) -> None:
    """训练一版新的倾向模型，在截止日期之后的预测期上检验，打印 AUC、基准发生率与十分位提升表。"""
    from crm.core.db import transaction
    from crm.plugins.analysis.propensity import train

    day = parse_day(cutoff, "截止日期")
    with get_app().session() as session, transaction(session):
        result = train(session, target, day, months)
    _show_report(result, fmt)


@propensity.command("score")
@target_option
@click.option(
    "--as-of", "as_of", metavar="日期", help="评分所依据的日期，如 2026-04-28（默认今天）。"
)
@version_option
@format_option
def propensity_score(target, as_of, version, fmt) -> None:
    """用已保存的模型为每户已购客户评分并保存（替换该版模型之前的评分），打印各十分位的分数区间。"""
    from dataclasses import asdict

    from crm.core.db import transaction
    from crm.core.render import json_record, to_json
    from crm.plugins.analysis.propensity import score

    day = parse_day(as_of, "评分日期")
    with get_app().session() as session, transaction(session):
        summary = score(session, target, day, version)
    result = asdict(summary)
    if fmt == "json":
        click.echo(to_json(json_record(result, SCORE_LABELS)))
        return
    if fmt == "csv":
        emit(result["deciles"], fmt, BOUND_COLUMNS)
        click.echo(
            f"已用第 {summary.version} 版模型为 {summary.households} 户评分"
            f"（截至 {summary.as_of}），平均分 {summary.mean_score:.4f}。",
            err=True,
        )
        return
    emit_record(result, fmt, SCORE_LABELS)
    click.echo("\n各十分位的分数区间（第 1 组分数最高）：")
    emit(result["deciles"], fmt, BOUND_COLUMNS)


@propensity.command("report")
@target_option
@version_option
@format_option
def propensity_report(target, version, fmt) -> None:
    """已保存模型的报告：训练日期与区间、评估期 AUC、基准发生率、十分位提升表与评分情况。"""
    from crm.plugins.analysis.propensity import report

    with get_app().session() as session:
        result = report(session, target, version)
    _show_report(result, fmt)


def _main_metric(metrics: dict) -> str | None:
    for key, label in MAIN_METRICS:
        value = metrics.get(key)
        if isinstance(value, int | float):
            return f"{label} {value:.3f}"
    return None


@click.command("models")
@click.option(
    "--kind",
    type=click.Choice(["segments", "buy_again", "refer", "complaint"]),
    help="只看一类模型：segments、buy_again、refer 或 complaint。",
)
@date_range("训练日期", "2026-01-01")
@paging(100)
@format_option
def analysis_models(kind, since, until, limit, offset, fmt) -> None:
    """已保存的分析模型（按类型，新版本在前）：类型、版本、训练时间与训练人、截止日期、样本数与主要指标。"""
    from crm.plugins.analysis.registry import list_models

    with get_app().session() as session:
        rows = list_models(session, kind, limit, offset, since, until)
    for row in rows:
        row["main_metric"] = _main_metric(row.pop("metrics"))
    emit(rows, fmt, MODEL_COLUMNS)


def register(group: click.Group) -> None:
    group.add_command(propensity)
    group.add_command(analysis_models)
