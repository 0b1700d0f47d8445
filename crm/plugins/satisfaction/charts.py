"""PNG charts of the KPI report: the monthly trend and the comparison by project.

matplotlib is imported inside the functions (it costs ~0.3 s), and drawn with the Agg canvas so
no display is needed, in the font crm.core.charts brings (Chinese on a machine without a Chinese
font); the legends sit outside the axes, where they cover no bar or point.
"""

from __future__ import annotations

import math
from pathlib import Path

from crm.core.charts import charts

MAX_MONTH_LABELS = 24
SERIES = [
    ("satisfaction_rate", "满意率"),
    ("timeliness_rate", "及时率"),
    ("closure_rate", "关闭率"),
    ("revisit_rate", "回访率"),
]


def _percent(rows: list[dict], key: str) -> list[float]:
    return [math.nan if row.get(key) is None else row[key] * 100 for row in rows]


def _trend(figure, monthly: list[dict]) -> None:
    axes = figure.subplots()
    months = [str(row["label"]) for row in monthly]
    x = range(len(months))
    for key, label in SERIES:
        axes.plot(x, _percent(monthly, key), marker="o", label=label)
    axes.set_ylabel("百分比（%）")
    axes.set_ylim(0, 105)
    nps_axes = axes.twinx()
    nps = [math.nan if row.get("nps") is None else row["nps"] for row in monthly]
    nps_axes.plot(x, nps, color="black", linestyle="--", marker="s", label="NPS")
    nps_axes.set_ylabel("NPS")
    nps_axes.set_ylim(-100, 100)
    lines = axes.get_legend_handles_labels()
    more = nps_axes.get_legend_handles_labels()
    # Outside the axes, right of the NPS scale: inside, a legend covers points or bars.
    figure.legend(
        lines[0] + more[0], lines[1] + more[1], loc="outside right upper", fontsize="small"
    )
    axes.set_title("满意度与服务指标月度趋势")
    # At most MAX_MONTH_LABELS month labels: years of history would print them on each other.
    step = math.ceil(len(months) / MAX_MONTH_LABELS)
    axes.set_xticks(x[::step], months[::step], rotation=45, ha="right")


def _by_project(figure, projects: list[dict]) -> None:
    axes = figure.subplots()
    names = [str(row["label"]) for row in projects]
    width = 0.8 / len(SERIES)
    for index, (key, label) in enumerate(SERIES):
        offsets = [i + (index - (len(SERIES) - 1) / 2) * width for i in range(len(names))]
        axes.bar(offsets, _percent(projects, key), width=width, label=label)
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axes.set_ylabel("百分比（%）")
    axes.set_ylim(0, 105)
    figure.legend(loc="outside right upper", fontsize="small")
    axes.set_title("各项目满意度与服务指标")


def write_charts(
    monthly: list[dict], projects: list[dict], directory: Path
) -> tuple[list[Path], str | None]:
    """Write trend.png and projects.png into `directory`; returns the paths and a note for
    the user when no Chinese font was found."""
    written = []
    with charts(directory) as drawing:
        for name, draw, rows in (
            ("trend.png", _trend, monthly),
            ("projects.png", _by_project, projects),
        ):
            figure = drawing.figure(10, 5.5)
            if rows:
                draw(figure, rows)
            else:
                figure.text(0.5, 0.5, "所选时间段内暂无数据", ha="center", va="center")
            written.append(drawing.save(figure, name))
    return written, drawing.note
