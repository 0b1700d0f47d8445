"""Customer segments: planted groups are found and described by the right features, runs are
stored and compared without retraining, the CLI and the campaign hook read them.

The planted portfolio (as of AS_OF) has three groups of 40 households, each group alike within
itself and far from the others:
- 新客 (new): one purchase 30-69 days ago, no complaints, no referrals, not club members;
- 置业 (investors): three purchases 8, 6 and 4 years ago, dearer units, club members, each
  referred two new buyers;
- 投诉 (complainers): one purchase about four years ago, three complaints each.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import func, select

from crm.core.db import transaction
from crm.core.errors import CrmError, NotFound, PermissionDenied
from crm.core.models import Household, Purchase, Referral, ServiceRecord
from crm.core.security import User
from crm.plugins.analysis import registry
from crm.plugins.analysis.features import household_features
from crm.plugins.analysis.models import HouseholdSegment, SavedModel, Segment, SegmentRun
from crm.plugins.analysis.segments import (
    compare_runs,
    list_runs,
    run_segments,
    segment_report,
)

AS_OF = dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)
GROUP = 40


def _days_ago(days: int) -> dt.date:
    return AS_OF - dt.timedelta(days=days)


def _plant(session, group: str, count: int, start: int) -> list[int]:
    """Add `count` households of a planted group; returns their ids."""
    homes = []
    for i in range(start, start + count):
        home = Household(
            code=f"{group}{i}",
            name=f"{group}家{i}",
            status="existing",
            member_tier="gold" if group == "置业" else "none",
        )
        jitter = i % 10
        if group == "新客":
            dates, price = [_days_ago(30 + jitter * 4)], 1_200_000 + jitter * 20_000
        elif group == "置业":
            dates = [_days_ago(years * 365 + jitter) for years in (8, 6, 4)]
            price = 4_000_000 + jitter * 50_000
        else:
            dates, price = [_days_ago(4 * 365 + jitter * 3)], 1_500_000 + jitter * 20_000
        for n, day in enumerate(dates):
            home.purchases.append(
                Purchase(contract_no=f"{group}{i}-{n}", purchase_date=day, amount=Decimal(price))
            )
        session.add(home)
        homes.append(home)
    session.flush()
    for i, home in enumerate(homes, start):
        if group == "投诉":
            for n in range(3):
                session.add(
                    ServiceRecord(
                        record_no=f"TS{i}-{n}",
                        household_id=home.id,
                        kind="complaint",
                        status="closed",
                        opened_at=NOW - dt.timedelta(days=300 + 30 * n),
                        summary="漏水投诉",
                    )
                )
    return [home.id for home in homes]


@pytest.fixture
def planted(session):
    with transaction(session):
        groups = {
            name: _plant(session, name, GROUP, 1 + n * GROUP)
            for n, name in enumerate(("新客", "置业", "投诉"))
        }
        # Each investor referred two of the new households.
        new = groups["新客"]
        for n, referrer in enumerate(groups["置业"]):
            for m in (0, 1):
                session.add(
                    Referral(
                        referrer_household_id=referrer,
                        referred_household_id=new[(2 * n + m) % GROUP],
                        referred_on=_days_ago(200),
                    )
                )
    return groups


def _labels(session, run_id: int) -> dict[int, int]:
    rows = session.execute(
        select(HouseholdSegment.household_id, HouseholdSegment.label).where(
            HouseholdSegment.run_id == run_id
        )
    )
    return dict(rows.all())


def _segments(session, run_id: int) -> dict[int, Segment]:
    return {s.label: s for s in session.scalars(select(Segment).where(Segment.run_id == run_id))}


def test_planted_groups_are_found_by_silhouette_and_described_by_their_features(session, planted):
    with transaction(session):
        result = run_segments(session, as_of=AS_OF, now=NOW)
    run = result.run
    assert (run.k, run.chosen_by, run.households, run.as_of) == (3, "silhouette", 120, AS_OF)
    assert sorted(run.tried, key=int) == [str(k) for k in range(2, 9)]
    assert max(run.tried, key=run.tried.get) == "3"
    assert run.silhouette == run.tried["3"] > 0.6
    labels = _labels(session, run.id)
    segments = _segments(session, run.id)
    assert len(labels) == 120 and len(segments) == 3
    by_group = {}
    for group, ids in planted.items():
        found = {labels[i] for i in ids}
        assert len(found) == 1, group  # every planted group is one segment, whole
        by_group[group] = segments[found.pop()]
    assert len({s.label for s in by_group.values()}) == 3
    assert all(s.size == GROUP for s in segments.values())

    investors = by_group["置业"]
    assert investors.means["frequency"] == 3.0 and investors.means["referrals"] == 2.0
    assert investors.means["member"] == 1.0
    assert "购买次数多（平均 3.0 次，全体 1.7 次）" in investors.description
    # Frequency, membership and referrals set investors apart equally: the first listed wins.
    assert investors.name == "多次置业·高价值客户"
    complainers = by_group["投诉"]
    assert complainers.means["complaints"] == 3.0
    assert "投诉多（平均 3.0 次，全体 1.0 次）" in complainers.description
    assert "多投诉" in complainers.name
    new = by_group["新客"]
    assert new.means["recency_days"] == pytest.approx(48.0)  # 30 + 4 × mean jitter 4.5
    assert "最近刚购买（距今平均 48 天" in new.description or "新近成为客户" in new.description
    assert len({s.name for s in segments.values()}) == 3

    # The saved model reproduces the stored labels from the same features.
    model = registry.find_model(session, "segments")
    assert (model.version, model.rows, model.id) == (1, 120, run.model_id)
    assert model.metrics["tried"] == run.tried and model.params["k"] == 3
    features = household_features(session, AS_OF)
    predicted = registry.load_estimator(model).predict(features.matrix)
    stored = np.array([labels[i] for i in features.household_ids.tolist()])
    assert (predicted == stored).all()


def test_a_given_k_stores_a_new_version_and_showing_never_retrains(session, planted, run):
    with transaction(session):
        first = run_segments(session, as_of=AS_OF, now=NOW).run.id
        second = run_segments(session, as_of=AS_OF, k=2, now=NOW + dt.timedelta(hours=1))
    assert (second.run.k, second.run.chosen_by) == (2, "given")
    assert second.run.tried == {"2": second.run.silhouette}
    assert second.model.version == 2
    assert sum(s["size"] for s in second.segments) == 120
    assert sorted(s["size"] for s in second.segments) == [40, 80]

    latest = segment_report(session)
    assert latest.run["id"] == second.run.id and latest.run["model_version"] == 2
    older = segment_report(session, first)
    assert (older.run["k"], older.run["chosen_by"]) == (3, "silhouette")
    assert [s["size"] for s in older.segments] == [40, 40, 40]
    assert all(s["share"] == pytest.approx(1 / 3) for s in older.segments)
    assert [r["id"] for r in list_runs(session)] == [second.run.id, first]

    for args in (("segment-show",), ("segment-show", str(first)), ("segment-runs",)):
        assert run("analysis", *args).exit_code == 0
    assert session.scalar(select(func.count()).select_from(SavedModel)) == 2
    assert session.scalar(select(func.count()).select_from(SegmentRun)) == 2
    assert session.scalar(select(func.count()).select_from(HouseholdSegment)) == 240
    with pytest.raises(NotFound, match="没有编号为 99 的分群记录"):
        segment_report(session, 99)


def test_compare_counts_households_that_stayed_moved_joined_and_left(session, planted):
    with transaction(session):
        first = run_segments(session, as_of=AS_OF, now=NOW).run
        extra = _plant(session, "新客", 10, 1000)
        second = run_segments(session, as_of=AS_OF, now=NOW + dt.timedelta(days=1)).run
        third = run_segments(session, as_of=AS_OF, k=2, now=NOW + dt.timedelta(days=2)).run
    assert (first.households, second.households) == (120, 130)
    names_first = {s.label: s.name for s in _segments(session, first.id).values()}
    names_second = {s.label: s.name for s in _segments(session, second.id).values()}
    assert sorted(names_first.values()) == sorted(names_second.values())

    comparison = compare_runs(session, first.id, second.id)
    summary = comparison.summary
    assert (summary["in_both"], summary["stayed"], summary["moved"]) == (120, 120, 0)
    assert (summary["joined"], summary["left"]) == (10, 0)
    new_name = names_second[_labels(session, second.id)[extra[0]]]
    assert {
        (row["from_segment"], row["to_segment"], row["households"]) for row in comparison.moves
    } == {(name, name, 40) for name in names_first.values()} | {
        ("（未参与较早一次分群）", new_name, 10)
    }

    # Against the two-segment run, count the pairs independently from the stored labels.
    comparison = compare_runs(session, third.id, first.id)
    before, after = _labels(session, third.id), _labels(session, first.id)
    names_third = {s.label: s.name for s in _segments(session, third.id).values()}
    expected: dict[tuple[str, str], int] = {}
    for household, label in after.items():
        key = (names_third[before[household]], names_first[label])
        expected[key] = expected.get(key, 0) + 1
    expected[(names_third[before[extra[0]]], "（未参与较新一次分群）")] = 10
    assert {(r["from_segment"], r["to_segment"]): r["households"] for r in comparison.moves} == (
        expected
    )
    assert comparison.summary["left"] == 10 and comparison.summary["joined"] == 0
    assert comparison.summary["stayed"] + comparison.summary["moved"] == 120
    with pytest.raises(CrmError, match="两次不同"):
        compare_runs(session, first.id, first.id)


def test_hook_gives_the_latest_runs_segment_names(session, planted):
    hook = session.info["pm"].hook
    assert hook.household_segments(session=session) is None
    with transaction(session):
        run_segments(session, as_of=AS_OF, now=NOW)
        latest = run_segments(session, as_of=AS_OF, k=2, now=NOW + dt.timedelta(hours=1)).run
    names = hook.household_segments(session=session)
    segments = _segments(session, latest.id)
    labels = _labels(session, latest.id)
    assert len(names) == 120
    assert names == {household: segments[label].name for household, label in labels.items()}
    assert len(set(names.values())) == 2


def test_refusals_write_nothing(session, planted, run):
    session.info["user"] = User("小李", "sales")
    with pytest.raises(PermissionDenied, match="无权训练客户分群"):
        run_segments(session, as_of=AS_OF)
    session.info["user"] = User("分析员", "analyst")
    with pytest.raises(CrmError, match="只有 0 户客户家庭有购买记录，至少需要 20 户"):
        run_segments(session, as_of=_days_ago(9 * 365))
    # Five years back only the 40 investors had bought: too few for nine segments.
    with pytest.raises(CrmError, match="要分成 9 群，至少需要 45 户.*只有 40 户"):
        run_segments(session, as_of=_days_ago(5 * 365), k=9)
    with pytest.raises(CrmError, match="2 到 20"):
        run_segments(session, as_of=AS_OF, k=1)
    with pytest.raises(CrmError, match="待选分群数必须在 2 到 20 之间"):
        run_segments(session, as_of=AS_OF, k_range=range(2, 30))
    session.rollback()
    for args, as_, words in (
        (("segments",), "小李:sales", "无权训练客户分群"),
        (("segments", "--as-of", "2026-13-01"), "分析员:analyst", "不是有效日期"),
        (("segment-show",), "分析员:analyst", "还没有分过群"),
        (("segment-compare", "1", "2"), "分析员:analyst", "没有编号为 1 的分群记录"),
    ):
        result = run("analysis", *args, as_=as_)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert words in result.output
    assert session.scalar(select(func.count()).select_from(SegmentRun)) == 0
    assert session.scalar(select(func.count()).select_from(SavedModel)) == 0


def test_segments_on_demo_data_through_the_cli(session, run, fixed_now):
    from crm.core.demo import build_demo

    with transaction(session):
        build_demo(session, households=300, seed=21, now=fixed_now)
    result = run("analysis", "segments", as_="分析员:analyst")
    assert result.exit_code == 0, result.output
    assert "分群名称" in result.output and "区别于全体的特征" in result.output
    assert "按轮廓系数选定分" in result.output and "k=8" in result.output
    assert "全体" in result.output and "（平均" in result.output
    shown = json.loads(run("analysis", "segment-show", "--format", "json").output)
    buyers = session.scalar(select(func.count(func.distinct(Purchase.household_id))))
    assert shown["run"]["households"] == sum(s["size"] for s in shown["segments"])
    assert 0 < shown["run"]["households"] <= buyers
    assert all("全体" in s["description"] for s in shown["segments"])
    assert (
        shown["run"]["k"]
        == len(shown["segments"])
        == int(max(shown["run"]["tried"], key=shown["run"]["tried"].get))
    )

    given = run("analysis", "segments", "--k", "4", "--format", "csv")
    assert given.exit_code == 0, given.output
    assert given.stdout.splitlines()[0] == "name,size,share,description"
    assert len(given.stdout.splitlines()) == 5
    runs = json.loads(run("analysis", "segment-runs", "--format", "json").output)
    assert (runs[0]["k"], runs[0]["chosen_by"], runs[0]["model_version"]) == (4, "given", 2)
    # JSON keeps the code with its label beside it, in segment-runs as in segment-show
    assert runs[0]["chosen_by_label"] == "指定" and "chosen_by_name" not in runs[0]
    shown_run = json.loads(run("analysis", "segment-show", "--format", "json").output)["run"]
    assert (shown_run["chosen_by"], shown_run["chosen_by_label"]) == ("given", "指定")
    assert "chosen_by_name" not in shown_run
    moved = run("analysis", "segment-compare", str(runs[1]["id"]), str(runs[0]["id"]))
    assert moved.exit_code == 0, moved.output
    assert f"两次都在的 {shown['run']['households']} 户中" in moved.output


def test_the_tracking_card_shows_the_segment_and_the_latest_scores(session, planted, run):
    from crm.core.models import Household
    from crm.plugins.analysis import registry
    from crm.plugins.analysis.models import PropensityScore
    from crm.plugins.analysis.segments import latest_segment_names

    home = session.scalar(select(Household).order_by(Household.id).limit(1))
    card = json.loads(run("household", "show", home.code, "--format", "json").output)
    assert "客户分群与倾向" not in [s["title"] for s in card["sections"]]  # nothing analysed yet

    assert run("analysis", "segments", "--k", "3", as_="分析员:analyst").exit_code == 0
    with transaction(session):
        # Two versions of the buy-again model scored this household: the card shows the newer.
        for version, score, decile in ((1, 0.30, 2), (2, 0.125, 1)):
            model = registry.save_model(session, "buy_again", {"版本": version}, actor="测试")
            session.add(
                PropensityScore(
                    model_id=model.id, household_id=home.id, as_of=dt.date(2026, 11, 1),
                    score=score, decile=decile,
                )
            )  # fmt: skip
    card = json.loads(run("household", "show", home.code, "--format", "json").output)
    [section] = [s for s in card["sections"] if s["title"] == "客户分群与倾向"]
    [segment] = [v for k, v in section["lines"].items() if k.startswith("客户分群")]
    assert segment == latest_segment_names(session)[home.id]
    assert section["lines"]["再次购买倾向"] == "12.5%（第 1 十分位，模型第 2 版，截至 2026-11-01）"
    assert "推荐新客倾向" not in section["lines"]  # never scored
