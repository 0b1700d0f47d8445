"""`crm analysis classify train|report|suggest` (complaint classification) and
`crm analysis hotspots` (complaint spikes against their own history).

Each command parses, calls the library, renders; scikit-learn and scipy load inside the
library functions only when a command runs.
"""

from __future__ import annotations

import click

from crm.core.cliutil import argument, emit, emit_record, format_option, get_app, paging

SUMMARY_COLUMNS = [
    ("target", "预测目标"),
    ("accuracy", "留出集准确率"),
    ("baseline_accuracy", "基线准确率（多数类）"),
    ("baseline_class", "多数类"),
    ("complaint_accuracy", "投诉准确率"),
    ("complaint_baseline", "投诉基线"),
    ("unseen_accuracy", "新措辞准确率"),
    ("unseen_rows", "新措辞张数"),
    ("test_rows", "留出张数"),
]
CLASS_COLUMNS = [
    ("target", "预测目标"),
    ("label", "类别"),
    ("precision", "精确率"),
    ("recall", "召回率"),
    ("f1", "F1"),
    ("support", "留出张数"),
    ("train", "训练张数"),
]
HOTSPOT_COLUMNS = [
    ("level", "层级"),
    ("project", "项目"),
    ("building", "楼栋"),
    ("category_name", "类别"),
    ("period", "期间"),
    ("count", "投诉件数"),
    ("baseline", "以往平均"),
    ("ratio", "倍数"),
    ("p_value", "p 值"),
    ("why", "投诉原因"),
    ("reason", "说明"),
]
TARGET_NAMES = {"category": "类别", "severity": "严重程度"}


def _suggest_labels(names: dict) -> list[tuple]:
    """A suggestion's lines; the codes read by the names the model was trained with."""
    return [
        ("category", "建议类别", names.get("category", {})),
        ("category_confidence", "类别置信度"),
        ("severity", "建议严重程度", names.get("severity", {})),
        ("severity_confidence", "严重程度置信度"),
        ("model_version", "模型版本"),
    ]


def _summary_rows(metrics: dict, names: dict, as_text: bool) -> list[dict]:
    from crm.core.render import percent

    shown = (lambda v: percent(v, missing="—")) if as_text else (lambda v: v)
    rows = []
    for target, name in TARGET_NAMES.items():
        part = metrics[target]
        rows.append(
            {
                "target": name,
                "accuracy": shown(part["accuracy"]),
                "baseline_accuracy": shown(part["baseline_accuracy"]),
                "baseline_class": names.get(target, {}).get(
                    part["baseline_class"], part["baseline_class"]
                ),
                "complaint_accuracy": shown(part["complaints"]["accuracy"]),
                "complaint_baseline": shown(part["complaints"]["baseline_accuracy"]),
                "unseen_accuracy": shown(part["unseen_wording"]["accuracy"]),
                "unseen_rows": part["unseen_wording"]["rows"],
                "test_rows": metrics["test_rows"],
            }
        )
    return rows


def _class_rows(metrics: dict, names: dict) -> list[dict]:
    rows = []
    for target, name in TARGET_NAMES.items():
        part = metrics[target]
        for label, scores in part["report"].items():
            if not isinstance(scores, dict) or label in ("macro avg", "weighted avg"):
                continue
            rows.append(
                {
                    "target": name,
                    "label": names.get(target, {}).get(label, label),
                    "precision": scores["precision"],
                    "recall": scores["recall"],
                    "f1": scores["f1-score"],
                    "support": int(scores["support"]),
                    "train": part["train_counts"].get(label, 0),
                }
            )
    return rows


def _show_report(result: dict, fmt: str) -> None:
    from crm.core.render import json_record, to_json

    metrics = result["metrics"]
    names = result["params"].get("names", {})
    if fmt == "json":
        # Each target's majority class with its label, by the names the model was trained with.
        labelled = {
            target: json_record(
                metrics[target], [("baseline_class", "多数类", names.get(target, {}))]
            )
            for target in TARGET_NAMES
        }
        click.echo(to_json({**result, "metrics": {**metrics, **labelled}}))
        return
    overlap = metrics["template_overlap"]
    emit(_summary_rows(metrics, names, fmt == "table"), fmt, SUMMARY_COLUMNS)
    lines = [
        (
            f"投诉分类模型第 {result['version']} 版：共 {result['rows']} 张已评估工单，"
            f"按受理时间留出最近的 {metrics['test_rows']} 张检验"
            f"（{metrics['test_from']} 至 {metrics['test_to']}），训练 {metrics['train_rows']} 张；"
            "保存的模型已用全部工单重新拟合。"
        ),
        (
            f"措辞重合：留出工单中 {overlap['share']:.1%}（{overlap['held_out_seen']} 张）"
            f"去掉房号后的文字在训练集中出现过（训练集共 {overlap['train_wordings']} 种措辞）；"
            "重合比例高时，准确率主要说明模型认得已见过的措辞，新措辞的准确率见“新措辞准确率”。"
        ),
    ]
    if fmt != "table":
        for line in lines:
            click.echo(line, err=True)
        return
    click.echo("")
    for line in lines:
        click.echo(line)
    click.echo("\n【各类别的精确率与召回率（留出集）】")
    emit(_class_rows(metrics, names), fmt, CLASS_COLUMNS)


@click.group("classify")
def classify() -> None:
    """投诉分类：按投诉文字建议类别与严重程度（训练、报告、试用建议）。"""


@classify.command("train")
@click.option(
    "--test-share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="按受理时间留出最近多少比例的工单检验准确率。",
)
@click.option("--seed", type=int, default=2026, show_default=True, help="随机种子（可复现）。")
@format_option
def classify_train(test_share, seed, fmt) -> None:
    """用已评估的工单训练投诉分类模型，打印留出集准确率、基线与措辞重合比例，并保存为新版本。"""
    from crm.core.db import transaction
    from crm.plugins.analysis.classifier import train

    with get_app().session() as session, transaction(session):
        result = train(session, test_share=test_share, seed=seed)
    _show_report(result, fmt)


@classify.command("report")
@click.option(
    "--version", "version", metavar="版本", type=click.IntRange(1), help="模型版本（默认最新）。"
)
@format_option
def classify_report(version, fmt) -> None:
    """查看已保存的投诉分类模型：训练日期、留出集准确率、基线与各类别表现。"""
    from crm.plugins.analysis.classifier import report

    with get_app().session() as session:
        result = report(session, version)
    _show_report(result, fmt)


@classify.command("suggest")
@argument("text", "文字")
@click.option(
    "--type",
    "ticket_type",
    default="complaint",
    show_default=True,
    type=click.Choice(("complaint", "repair", "suggestion", "enquiry")),
    help="工单类型：complaint 投诉、repair 报修、suggestion 建议、enquiry 咨询。",
)
@format_option
def classify_suggest(text, ticket_type, fmt) -> None:
    """用最新保存的模型为一段文字建议类别与严重程度（不重新训练）。"""
    from crm.core.errors import CrmError
    from crm.core.render import percent
    from crm.plugins.analysis.classifier import suggest
    from crm.plugins.analysis.registry import TRAIN_COMMANDS

    with get_app().session() as session:
        found = suggest(session, text, ticket_type)
    if found is None:
        raise CrmError(f"还没有训练过投诉分类模型：请先运行 {TRAIN_COMMANDS['complaint']}。")
    names = found.pop("names")
    if fmt == "table":
        for key in ("category_confidence", "severity_confidence"):
            found[key] = percent(found[key], missing="—")
    emit_record(found, fmt, _suggest_labels(names))


@click.command("hotspots")
@click.option(
    "--grain",
    type=click.Choice(("month", "week")),
    default="month",
    show_default=True,
    help="统计粒度：month 按月，week 按 ISO 周。",
)
@click.option(
    "--period",
    metavar="期间",
    help="要检查的期间：按月写 2026-11，按周写 2026-W47（默认本月/本周）。",
)
@click.option(
    "--history",
    metavar="期数",
    type=click.IntRange(2),
    default=12,
    show_default=True,
    help="与之比较的前几期（同一楼栋、同一类别自身的历史）。",
)
@click.option(
    "--min-count",
    metavar="件数",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="至少多少件投诉才算热点。",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="显著性水平：按以往频率出现这么多投诉的概率低于它才算热点。",
)
@paging(100)
@format_option
def hotspots(grain, period, history, min_count, alpha, limit, offset, fmt) -> None:
    """投诉热点：某项目、楼栋某类投诉在本期明显高于其自身历史（泊松检验），最显著的在前。

    每个楼栋与项目的每类投诉都参加检验；--limit/--offset 只决定显示哪几行。"""
    from crm.core.paging import window
    from crm.plugins.analysis.hotspots import hot_spots

    with get_app().session() as session:
        found = hot_spots(
            session,
            grain=grain,
            period=period,
            history=history,
            min_count=min_count,
            alpha=alpha,
        )
    rows = window(found, limit, offset)
    if fmt == "table":
        rows = rows.map(lambda row: {**row, "p_value": f"{row['p_value']:.1e}"})
    if fmt != "json":
        from crm.plugins.analysis.hotspots import cause_text

        rows = rows.map(
            lambda row: {
                **{k: v for k, v in row.items() if k not in ("history", "causes")},
                "why": cause_text(row["causes"]) or "（未记录）",
            }
        )
    emit(rows, fmt, HOTSPOT_COLUMNS)
    if not found:
        click.echo("该期间没有发现投诉热点。", err=True)


def register(group: click.Group) -> None:
    group.add_command(classify)
    group.add_command(hotspots)
