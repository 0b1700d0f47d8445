"""Customer segments (客户分群): households that bought before a date, grouped by scaled
k-means on recency, frequency, value, tenure, complaints, satisfaction gap, referrals made and
club membership; the number of segments is chosen by silhouette unless given.

Each segment is named and described in words by the features that set it apart: its mean
against the whole portfolio, in standard deviations of the scaled features the clustering
itself used. A run is stored with its date, every household's segment and the fitted model, so
a later run can be compared with it (who moved where) and nothing is retrained to show one.

Speed: the k search fits each candidate on a random sample of households (SEARCH_SAMPLE) and
scores it by the silhouette of a smaller sample (SILHOUETTE_SAMPLE, the silhouette costs the
square of its sample); the chosen k is then fitted on every household. On the 2-core bench
machine a million households take well under a minute end to end (bench/segments.py).
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from crm.core import audit
from crm.core.bulk import write_rows
from crm.core.clock import local_today
from crm.core.errors import CrmError, NotFound
from crm.core.models import utcnow
from crm.core.paging import Page, between, fetch
from crm.core.render import percent
from crm.plugins.analysis import registry
from crm.plugins.analysis.features import FEATURES, Features, household_features
from crm.plugins.analysis.models import HouseholdSegment, SavedModel, Segment, SegmentRun
from crm.plugins.analysis.vocab import CHOSEN_BY

# Counts, amounts and day spans are long-tailed: a few households with many purchases or
# complaints would otherwise make segments of their own. log1p keeps zero at zero.
SKEWED = ("recency_days", "frequency", "value", "tenure_days", "complaints", "referrals")
MIN_HOUSEHOLDS = 20
# A candidate k needs on average this many households per segment to be worth trying.
MIN_PER_SEGMENT = 5
MAX_K = 20
SEARCH_SAMPLE = 100_000
SILHOUETTE_SAMPLE = 10_000
N_INIT = 3
LABEL_SLICE = 100_000
# A feature sets a segment apart when its mean lies this many standard deviations from the
# portfolio's; the description names at most DESCRIBED of them, the name NAMED.
DISTINCT_Z = 0.5
DESCRIBED = 3
NAMED = 2
JOINED = "（未参与较早一次分群）"
LEFT = "（未参与较新一次分群）"


def _days(value: float) -> str:
    return f"{value / 365:.1f} 年" if value >= 365 else f"{value:.0f} 天"


def _number(unit: str, digits: int = 1):
    return lambda value: f"{value:,.{digits}f} {unit}".rstrip()


# Feature -> (words when high, words when low, what the means measure, how a mean reads,
# name tag when high, name tag when low).
WORDS = {
    "recency_days": ("很久没有再购买", "最近刚购买", "距今平均", _days, "久未购买", "新近成交"),
    "frequency": ("购买次数多", "购买次数少", "平均", _number("次"), "多次置业", "单次置业"),
    "value": ("购买总额高", "购买总额低", "平均", _number("万元", 0), "高价值", "低总额"),
    "tenure_days": ("成为客户时间长", "新近成为客户", "平均", _days, "资深", "新晋"),
    "complaints": ("投诉多", "投诉少", "平均", _number("次"), "多投诉", "少投诉"),
    "satisfaction_gap": (
        "体验超出期望",
        "体验低于期望",
        "体验−期望平均",
        _number("", 2),
        "满意",
        "不满意",
    ),
    "referrals": ("推荐新客多", "很少推荐新客", "平均", _number("户"), "热心推荐", "少推荐"),
    "member": (
        "多为万客会会员",
        "多非万客会会员",
        "会员占",
        lambda v: percent(v, digits=0),
        "会员",
        "非会员",
    ),
}


@dataclass
class SegmentResult:
    """What one segmentation made: the stored run, its saved model, its segments (as in
    `segment_report`) and the seconds each step took."""

    run: SegmentRun
    model: SavedModel
    segments: list[dict]
    missing: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentReport:
    run: dict
    segments: list[dict]


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side: totals, and households per (older segment, newer segment)."""

    summary: dict
    moves: list[dict]


def _log_columns(matrix: np.ndarray, columns: list[int]) -> np.ndarray:
    out = np.array(matrix, dtype=float)
    out[:, columns] = np.log1p(np.maximum(out[:, columns], 0))
    return out


def _preprocessor():
    """log1p on the skewed columns, then standard scaling of every column (not fitted)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    skewed = [list(FEATURES).index(name) for name in SKEWED]
    return Pipeline(
        [
            ("log", FunctionTransformer(_log_columns, kw_args={"columns": skewed})),
            ("scale", StandardScaler()),
        ]
    )


def _kmeans(k: int, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=N_INIT, random_state=seed)


def _fit(k: int, seed: int, matrix: np.ndarray):
    """A fitted k-means and its labels; None when the data hold fewer than k distinct points
    (scikit-learn warns and returns duplicate centres then)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _kmeans(k, seed).fit(matrix)
    labels = model.labels_
    if np.unique(labels).size < k:
        return None
    return model


def _silhouette(matrix: np.ndarray, labels: np.ndarray) -> float | None:
    import sklearn
    from sklearn.metrics import silhouette_score

    if np.unique(labels).size < 2:
        return None
    # The pairwise distances of the sample are computed in chunks of this many MiB; the
    # default (1 GiB) made the silhouette the largest memory user of a million-household run.
    with sklearn.config_context(working_memory=64):
        return float(silhouette_score(matrix, labels))


def _check_range(k: int | None, k_range) -> list[int]:
    """The numbers of segments to try, before any work is done."""
    tried = [k] if k is not None else sorted(set(k_range))
    if k is not None and not 2 <= k <= MAX_K:
        raise CrmError(f"分群数 {k} 无效：请给出 2 到 {MAX_K} 之间的整数。")
    if not tried or tried[0] < 2 or tried[-1] > MAX_K:
        raise CrmError(f"待选分群数必须在 2 到 {MAX_K} 之间：请调整最大分群数。")
    return tried


def _candidates(k: int | None, tried: list[int], households: int) -> list[int]:
    """Those of `tried` that leave enough households per segment."""
    usable = [n for n in tried if n * MIN_PER_SEGMENT <= households]
    if k is not None and not usable:
        raise CrmError(
            f"要分成 {k} 群，至少需要 {k * MIN_PER_SEGMENT} 户有购买记录的客户家庭，"
            f"现在只有 {households} 户：请减小分群数。"
        )
    if not usable:
        raise CrmError(
            f"只有 {households} 户有购买记录的客户家庭，不够分成 {tried[0]} 群以上"
            f"（每群平均至少 {MIN_PER_SEGMENT} 户）：请先导入更多购买记录。"
        )
    return usable


def run_segments(
    session: Session,
    as_of: dt.date | None = None,
    k: int | None = None,
    k_range=range(2, 9),
    seed: int = 2026,
    now: dt.datetime | None = None,
) -> SegmentResult:
    """Segment the households that bought before `as_of` (default: today) and store the run,
    its segments, every household's segment and the fitted model as the next saved version.
    `k` fixes the number of segments; otherwise the best silhouette over `k_range` decides.
    Does not commit."""
    user = audit.current_user(session)
    user.require("analysis.train", "训练客户分群")
    now = now or utcnow()
    as_of = as_of or local_today(now)
    tried_k = _check_range(k, k_range)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    features = household_features(session, as_of)
    households = len(features.household_ids)
    timings["features"] = time.perf_counter() - started
    if households < MIN_HOUSEHOLDS:
        raise CrmError(
            f"截至 {as_of} 只有 {households} 户客户家庭有购买记录，至少需要 {MIN_HOUSEHOLDS} "
            f"户才能分群：请换一个更晚的截止日期，或先导入购买记录。"
        )
    candidates = _candidates(k, tried_k, households)

    started = time.perf_counter()
    prepare = _preprocessor().fit(features.matrix)
    scaled = prepare.transform(features.matrix)
    rng = np.random.default_rng(seed)
    # One random order of households serves both samples, so every k is scored on the same
    # households and the final model on them too.
    order = rng.permutation(households)
    search = order[:SEARCH_SAMPLE]
    scored = order[:SILHOUETTE_SAMPLE]
    tried: dict[str, float] = {}
    if k is None:
        for candidate in candidates:
            model = _fit(candidate, seed, scaled[search])
            if model is None:
                continue
            score = _silhouette(scaled[scored], model.predict(scaled[scored]))
            if score is not None:
                tried[str(candidate)] = round(score, 4)
        if not tried:
            raise CrmError(
                "客户家庭的特征几乎完全相同，分不出两群以上：请等有更多购买、投诉或推荐记录后再分群。"
            )
        chosen = int(max(tried, key=lambda key: (tried[key], -int(key))))
    else:
        chosen = k
    timings["k_search"] = time.perf_counter() - started

    started = time.perf_counter()
    final = _fit(chosen, seed, scaled)
    if final is None:
        raise CrmError(
            f"客户家庭的特征只有不到 {chosen} 种不同组合，分不出 {chosen} 群：请减小分群数。"
        )
    labels = final.labels_.astype(np.int64)
    silhouette = _silhouette(scaled[scored], labels[scored])
    if k is not None and silhouette is not None:
        tried[str(k)] = round(silhouette, 4)
    timings["final_fit"] = time.perf_counter() - started

    started = time.perf_counter()
    from sklearn.pipeline import Pipeline

    segments = _describe(features, scaled, labels, chosen)
    chosen_by = "given" if k is not None else "silhouette"
    model = registry.save_model(
        session,
        "segments",
        Pipeline([("prepare", prepare), ("kmeans", final)]),
        actor=user.name,
        features=features.names,
        params={
            "k": chosen,
            "chosen_by": chosen_by,
            "k_range": candidates,
            "seed": seed,
            "as_of": as_of.isoformat(),
            "log1p": list(SKEWED),
            "search_sample": min(households, SEARCH_SAMPLE),
            "silhouette_sample": min(households, SILHOUETTE_SAMPLE),
            "missing_facts": list(features.missing),
        },
        metrics={"silhouette": silhouette, "tried": tried, "inertia": float(final.inertia_)},
        rows=households,
    )
    run = SegmentRun(
        run_at=now,
        run_by=user.name,
        as_of=as_of,
        model_id=model.id,
        k=chosen,
        chosen_by=chosen_by,
        silhouette=None if silhouette is None else round(silhouette, 4),
        tried=tried,
        households=households,
    )
    session.add(run)
    session.flush()
    session.add_all(
        Segment(
            run_id=run.id,
            label=segment["label"],
            name=segment["name"],
            description=segment["description"],
            size=segment["size"],
            means=segment["means"],
        )
        for segment in segments
    )
    _store_labels(session, run.id, features.household_ids, labels)
    audit.record(
        session,
        "train",
        "ana_segment_runs",
        run.id,
        detail=f"客户分群：截至 {as_of}，{households} 户分成 {chosen} 群"
        f"（{CHOSEN_BY[chosen_by]}），模型第 {model.version} 版",
    )
    session.flush()
    timings["storing"] = time.perf_counter() - started
    for segment in segments:
        segment["share"] = segment["size"] / households
    return SegmentResult(run, model, segments, features.missing, timings)


def _store_labels(session: Session, run_id: int, ids: np.ndarray, labels: np.ndarray) -> None:
    """Every household's segment, in the caller's transaction."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and bind.dialect.driver == "psycopg":
        # COPY takes a million rows in a second or two; executemany needs half a minute.
        cursor = session.connection().connection.driver_connection.cursor()
        table = HouseholdSegment.__tablename__
        with cursor.copy(f"COPY {table} (run_id, household_id, label) FROM STDIN") as copy:
            for household, label in zip(ids.tolist(), labels.tolist(), strict=True):
                copy.write_row((run_id, household, label))
        return
    # Elsewhere in slices, so a million rows' dicts never all sit in memory at once.
    for start in range(0, len(ids), LABEL_SLICE):
        write_rows(
            session,
            HouseholdSegment.__table__,
            [
                {"run_id": run_id, "household_id": household, "label": label}
                for household, label in zip(
                    ids[start : start + LABEL_SLICE].tolist(),
                    labels[start : start + LABEL_SLICE].tolist(),
                    strict=True,
                )
            ],
        )


def _group_means(matrix: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    sizes = np.bincount(labels, minlength=k).astype(float)
    sums = np.stack([np.bincount(labels, weights=column, minlength=k) for column in matrix.T])
    return (sums / sizes).T


def _describe(features: Features, scaled: np.ndarray, labels: np.ndarray, k: int) -> list[dict]:
    """Each segment's size, means in original units, name and description, biggest first."""
    names = features.names
    sizes = np.bincount(labels, minlength=k)
    means = _group_means(features.matrix, labels, k)
    # The scaled features have mean 0 and deviation 1 over the portfolio, so a segment's mean
    # there is its distance from the portfolio in standard deviations, as the clustering saw it.
    distances = _group_means(scaled, labels, k)
    overall = features.matrix.mean(axis=0)
    segments = []
    for label in range(k):
        # Differences under a tenth of a deviation mean nothing, and two-valued features
        # (club member or not, bought once or thrice) often tie exactly: such ties go to the
        # feature listed first, so a segment keeps its name from one run to the next.
        ranked = sorted(range(len(names)), key=lambda i: (-round(abs(distances[label, i]), 1), i))
        marked = [i for i in ranked[:DESCRIBED] if abs(distances[label, i]) >= DISTINCT_Z]
        marked = marked or ranked[:1]
        phrases, tags = [], []
        for i in marked:
            high, low, measure, show, high_tag, low_tag = WORDS[names[i]]
            above = distances[label, i] > 0
            phrases.append(
                f"{high if above else low}（{measure} {show(means[label, i])}，"
                f"全体 {show(overall[i])}）"
            )
            tags.append(high_tag if above else low_tag)
        segments.append(
            {
                "label": label,
                "tags": tags,
                "description": "、".join(phrases) + "。",
                "size": int(sizes[label]),
                "means": {name: round(float(means[label, i]), 4) for i, name in enumerate(names)},
            }
        )
    _name(segments)
    segments.sort(key=lambda segment: (-segment["size"], segment["label"]))
    for segment in segments:
        del segment["tags"]
    return segments


def _name(segments: list[dict]) -> None:
    """A short name from the strongest tags; a third tag, then a number, keeps names apart."""
    for segment in segments:
        segment["name"] = "·".join(segment["tags"][:NAMED]) + "客户"
    clashes = Counter(segment["name"] for segment in segments)
    for segment in segments:
        if clashes[segment["name"]] > 1 and len(segment["tags"]) > NAMED:
            segment["name"] = "·".join(segment["tags"]) + "客户"
    seen: Counter = Counter()
    clashes = Counter(segment["name"] for segment in segments)
    for segment in sorted(segments, key=lambda segment: -segment["size"]):
        if clashes[segment["name"]] > 1:
            seen[segment["name"]] += 1
            segment["name"] = f"{segment['name']}（{seen[segment['name']]}）"


def _run(session: Session, run_id: int | None) -> SegmentRun:
    if run_id is None:
        run = session.scalar(select(SegmentRun).order_by(SegmentRun.id.desc()).limit(1))
        if run is None:
            raise CrmError("还没有分过群：请先运行 crm analysis segments。")
        return run
    run = session.get(SegmentRun, run_id)
    if run is None:
        raise NotFound(
            f"没有编号为 {run_id} 的分群记录：用 crm analysis segment-runs 查看已有的分群。"
        )
    return run


def _run_row(run: SegmentRun, version: int) -> dict:
    return {
        "id": run.id,
        "run_at": run.run_at,
        "run_by": run.run_by,
        "as_of": run.as_of,
        "k": run.k,
        "chosen_by": run.chosen_by,
        "silhouette": run.silhouette,
        "tried": dict(sorted(run.tried.items(), key=lambda item: int(item[0]))),
        "households": run.households,
        "model_version": version,
    }


def segment_report(session: Session, run_id: int | None = None) -> SegmentReport:
    """A stored run (the latest by default) and its segments, biggest first; no retraining."""
    run = _run(session, run_id)
    version = session.scalar(select(SavedModel.version).where(SavedModel.id == run.model_id))
    rows = session.scalars(
        select(Segment).where(Segment.run_id == run.id).order_by(Segment.size.desc(), Segment.label)
    )
    segments = [
        {
            "label": segment.label,
            "name": segment.name,
            "size": segment.size,
            "share": segment.size / run.households if run.households else None,
            "description": segment.description,
            "means": segment.means,
        }
        for segment in rows
    ]
    return SegmentReport(_run_row(run, version), segments)


def list_runs(
    session: Session,
    limit: int | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """The stored segmentations run in [since, until), newest first: one page of them, with
    how many match."""
    query = (
        select(SegmentRun, SavedModel.version)
        .join(SavedModel, SavedModel.id == SegmentRun.model_id)
        .where(*between(SegmentRun.run_at, since, until))
        .order_by(SegmentRun.id.desc())
    )
    return fetch(session, query, limit, offset).map(lambda row: _run_row(*row))


def compare_runs(session: Session, older_id: int, newer_id: int) -> Comparison:
    """How households moved between the segments of two stored runs.

    k-means numbers its segments arbitrarily, so segments are matched by name: the name comes
    from the features that set a segment apart, so the same name means the same kind of
    household. A household counts as staying when its segment's name did not change."""
    if older_id == newer_id:
        raise CrmError("请给出两次不同的分群编号进行比较。")
    older, newer = _run(session, older_id), _run(session, newer_id)
    names = {
        (segment.run_id, segment.label): (segment.name, segment.size)
        for segment in session.scalars(
            select(Segment).where(Segment.run_id.in_((older.id, newer.id)))
        )
    }
    before, after = aliased(HouseholdSegment), aliased(HouseholdSegment)
    pairs = session.execute(
        select(before.label, after.label, func.count())
        .join(after, after.household_id == before.household_id)
        .where(before.run_id == older.id, after.run_id == newer.id)
        .group_by(before.label, after.label)
    ).all()
    matched_old: Counter = Counter()
    matched_new: Counter = Counter()
    moves = []
    for old_label, new_label, count in pairs:
        matched_old[old_label] += count
        matched_new[new_label] += count
        moves.append((names[older.id, old_label], names[newer.id, new_label][0], count))
    for (run_id, label), (name, size) in names.items():
        if run_id == older.id and size > matched_old[label]:
            moves.append(((name, size), LEFT, size - matched_old[label]))
        if run_id == newer.id and size > matched_new[label]:
            moves.append(((JOINED, 0), name, size - matched_new[label]))
    # Grouped by older segment, biggest first; households new to the newer run come last.
    moves.sort(key=lambda move: (-move[0][1], move[0][0], -move[2]))
    rows = [
        {
            "from_segment": source,
            "to_segment": target,
            "households": count,
            "share": count / size if size else None,
            "stayed": source == target,
        }
        for (source, size), target, count in moves
    ]
    both = sum(matched_old.values())
    stayed = sum(row["households"] for row in rows if row["stayed"])
    summary = {
        "older": older.id,
        "older_as_of": older.as_of,
        "older_households": older.households,
        "newer": newer.id,
        "newer_as_of": newer.as_of,
        "newer_households": newer.households,
        "in_both": both,
        "stayed": stayed,
        "moved": both - stayed,
        "joined": newer.households - both,
        "left": older.households - both,
    }
    return Comparison(summary, rows)


def latest_segment_names(session: Session) -> dict[int, str] | None:
    """The latest run's household id -> segment name; None when nothing was segmented yet."""
    run_id = session.scalar(select(func.max(SegmentRun.id)))
    if run_id is None:
        return None
    rows = session.execute(
        select(HouseholdSegment.household_id, Segment.name)
        .join(
            Segment,
            (Segment.run_id == HouseholdSegment.run_id) & (Segment.label == HouseholdSegment.label),
        )
        .where(HouseholdSegment.run_id == run_id)
    )
    return dict(rows.all())
