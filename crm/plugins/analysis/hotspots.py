"""Complaint hot spots (投诉热点): a building's (or a project's) complaints of one category that
spike against that place's own history.

For each (project, building, category) the period's count is set against the previous
`history` periods of the same place and category. Complaints arrive one by one and
independently enough to be treated as a Poisson process, so the question is how likely a
count this high would be at the usual rate: P(X >= count) under Poisson(rate). The rate is
the history's mean with half a complaint added over the window, so a place that never had a
complaint of the kind still has a small positive rate instead of making any single
complaint infinitely surprising; `min_count` keeps one or two complaints from being called a
spike however quiet the history. Every building's series is also rolled up per project and
category, so a spike spread over several buildings shows as a project-wide one.

Counts come from the `complaint_counts` hook (the service plugin counts in SQL).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

from sqlalchemy.orm import Session

from crm.core.clock import add_months, day_start, local_today
from crm.core.errors import CrmError
from crm.core.models import utcnow
from crm.core.vocab import COMPLAINT_CAUSES

GRAINS = {"month": "个月", "week": "周"}
PSEUDO_COUNT = 0.5  # added over the history window: the rate of a place with no complaints yet
NO_BUILDING = "（未登记楼栋）"
WHOLE_PROJECT = "（全项目）"


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def period_label(grain: str, start: dt.date) -> str:
    """The label the database gives the period starting on `start` ('2026-11', '2026-W47')."""
    if grain == "month":
        return f"{start.year}-{start.month:02d}"
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def period_start(grain: str, text: str) -> dt.date:
    """The first local day of a period written '2026-11' (month) or '2026-W47' (ISO week)."""
    text = text.strip().upper()
    if grain == "month":
        found = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
        if found and 1 <= int(found[2]) <= 12:
            return dt.date(int(found[1]), int(found[2]), 1)
        raise CrmError(f"月份“{text}”写法不对：请写成 2026-11 这样的格式。")
    found = re.fullmatch(r"(\d{4})-?W(\d{1,2})", text)
    if found:
        try:
            return dt.date.fromisocalendar(int(found[1]), int(found[2]), 1)
        except ValueError:
            pass
    raise CrmError(f"周次“{text}”写法不对：请写成 2026-W47 这样的 ISO 周（周一为一周之始）。")


def periods(grain: str, target: dt.date, history: int) -> list[dt.date]:
    """First days of the `history` periods before `target` and of `target`, oldest first."""
    if grain == "month":
        return [add_months(target, -back) for back in range(history, -1, -1)]
    return [target - dt.timedelta(weeks=back) for back in range(history, -1, -1)]


def _next_start(grain: str, start: dt.date) -> dt.date:
    return add_months(start, 1) if grain == "month" else start + dt.timedelta(weeks=1)


def _reason(row: dict, unit: str, history: int) -> str:
    place = f"{row['project'] or '（未知项目）'}{row['building'] or WHOLE_PROJECT}"
    what = f"{place}“{row['category_name']}”类投诉 {row['period']} 共 {row['count']} 件"
    if row["baseline"] == 0:
        past = f"前 {history} {unit}没有此类投诉"
    else:
        past = f"前 {history} {unit}平均 {row['baseline']:.2f} 件（{row['ratio']:.1f} 倍）"
    text = f"{what}，{past}；按以往频率出现这么多的概率 p={row['p_value']:.1e}。"
    if row["causes"]:
        text += f"投诉原因：{cause_text(row['causes'])}。"
    return text


def cause_text(causes: dict[str, int]) -> str:
    """'承诺未兑现 3 件、态度冷漠粗鲁 1 件': why they complained, most frequent first."""
    return "、".join(f"{COMPLAINT_CAUSES.get(c, c)} {n} 件" for c, n in causes.items())


def hot_spots(
    session: Session,
    grain: str = "month",
    period: str | None = None,
    history: int = 12,
    now: dt.datetime | None = None,
    min_count: int = 3,
    alpha: float = 0.01,
) -> list[dict]:
    """Places and categories whose complaints in `period` (default: the one holding `now`)
    spike against their previous `history` periods: count >= min_count and Poisson p < alpha.
    Rows per building and per project (building None), most significant first.

    A period still running is compared as counted so far, which can only understate a spike.
    Every place and category is tested, so with hundreds of series a few rows near `alpha`
    are expected by chance; the p-value orders them and a tighter alpha trims them."""
    if grain not in GRAINS:
        raise CrmError(f"不支持按“{grain}”统计：可用 month（按月）或 week（按周）。")
    if history < 2:
        raise CrmError("历史期数至少为 2：用 --history 指定与之比较的前几期。")
    if min_count < 1:
        raise CrmError("最少件数至少为 1：用 --min-count 指定。")
    if not 0 < alpha < 1:
        raise CrmError(f"显著性水平 {alpha} 不合适：请给 0 到 1 之间的数，如 0.01。")
    unit = GRAINS[grain]
    now = now or utcnow()
    today = local_today(now)
    if period is None:
        target = _month_start(today) if grain == "month" else today - dt.timedelta(today.weekday())
    else:
        target = period_start(grain, period)
    starts = periods(grain, target, history)
    labels = [period_label(grain, start) for start in starts]
    since, until = day_start(starts[0]), day_start(_next_start(grain, target))
    counted = session.info["pm"].hook.complaint_counts(
        session=session, since=since, until=until, grain=grain
    )
    if counted is None:
        raise CrmError("没有插件提供投诉统计（需要售后服务插件）：无法找投诉热点。")

    series: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    # Why they complained: causes counted per place and category in the target period.
    why: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    names: dict[str | None, str] = {}
    buildings: dict[tuple, set] = defaultdict(set)
    for row in counted:
        category = row["category"]
        names[category] = row.get("category_name") or category or "未评估"
        series[(row["project"], row["building"], category)][row["period"]] += row["count"]
        series[(row["project"], WHOLE_PROJECT, category)][row["period"]] += row["count"]
        buildings[(row["project"], category)].add(row["building"])
        if row["period"] == labels[-1]:
            for place in (row["building"], WHOLE_PROJECT):
                for cause, count in (row.get("causes") or {}).items():
                    why[(row["project"], place, category)][cause] += count

    # scipy only once the arguments and the period are known good.
    from scipy.stats import poisson

    target_label, past = labels[-1], labels[:-1]
    found = []
    for (project, building, category), counts in series.items():
        rolled_up = building == WHOLE_PROJECT
        # A project whose complaints of the kind all come from one building says nothing new.
        if rolled_up and len(buildings[(project, category)]) < 2:
            continue
        count = counts.get(target_label, 0)
        if count < min_count:
            continue
        before = [counts.get(label, 0) for label in past]
        mean = sum(before) / len(before)
        rate = (sum(before) + PSEUDO_COUNT) / len(before)
        p_value = float(poisson.sf(count - 1, rate))
        if p_value >= alpha:
            continue
        row = {
            "level": "项目" if rolled_up else "楼栋",
            "project": project,
            "building": None if rolled_up else (building or NO_BUILDING),
            "category": category,
            "category_name": names[category],
            "period": target_label,
            "count": count,
            "baseline": round(mean, 3),
            "ratio": round(count / mean, 2) if mean else None,
            "p_value": p_value,
            "history": dict(zip(past, before, strict=True)),
            "causes": dict(
                sorted(why[(project, building, category)].items(), key=lambda kv: (-kv[1], kv[0]))
            ),
        }
        row["reason"] = _reason(row, unit, history)
        found.append(row)
    found.sort(key=lambda r: (r["p_value"], -r["count"], r["project"] or "", r["building"] or ""))
    return found
