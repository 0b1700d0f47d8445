"""Complaint classification (投诉分类): from the Chinese text of a ticket, suggest its category
and severity, learnt from the tickets staff have already assessed.

Each target has one pipeline: character 1-3-gram TF-IDF of the text (Chinese needs no word
segmentation that way) plus the ticket type, into a logistic regression, so a suggestion comes
with a probability. Training data arrive through the `classified_tickets` hook; the latest
`test_share` of tickets by opening time is held out, as in production, where the model always
judges tickets newer than those it learnt from.

Reading the accuracy: when the texts repeat a few fixed wordings (the demo's complaints are a
small set of templates with the unit number filled in), a held-out ticket is usually a wording
already seen in training and the accuracy says little about new wordings. The metrics report
that share and the accuracy on the held-out texts not seen in training.

Training is an explicit act that saves a new model version; `suggest` only loads the latest.
"""

from __future__ import annotations

import datetime as dt
import pickle
import re
from collections import Counter
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from crm.core.audit import current_user
from crm.core.clock import local_today, to_local
from crm.core.errors import CrmError
from crm.core.models import utcnow
from crm.plugins.analysis import registry

KIND = "complaint"
TARGETS = {"category": "类别", "severity": "严重程度"}
MIN_TICKETS = 20
NGRAMS = (1, 3)
# Regularisation strengths tried, chosen by cross-validation on the training rows only.
C_GRID = (0.1, 1.0, 10.0)
# Unit codes (12-1A, 2A-1B, 1903), numbers and Latin letters say nothing about the problem.
CODES = re.compile(r"[0-9A-Za-z０-９Ａ-Ｚａ-ｚ\-－_/／#.]+")
BLANKS = re.compile(r"\s+")


def without_codes(text: str) -> str:
    """The wording of a text with unit codes and numbers masked and blanks removed: the model's
    input, and the key for telling whether two texts share a template."""
    return BLANKS.sub("", CODES.sub("#", text or ""))


def _inputs(texts: list[str], ticket_types: list[str]) -> np.ndarray:
    """Two columns (wording, ticket type) for the pipelines' ColumnTransformer."""
    out = np.empty((len(texts), 2), dtype=object)
    out[:, 0] = [without_codes(t) for t in texts]
    out[:, 1] = list(ticket_types)
    return out


def _pipeline(classes: int, seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    features = ColumnTransformer(
        [
            (
                "text",
                TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True),
                0,
            ),
            ("type", OneHotEncoder(handle_unknown="ignore"), [1]),
        ]
    )
    # One class seen (every ticket "general", say): nothing to learn, but the pipeline must
    # still answer with that class and a probability.
    model = (
        LogisticRegression(max_iter=2000, random_state=seed)
        if classes > 1
        else DummyClassifier(strategy="most_frequent")
    )
    return Pipeline([("features", features), ("model", model)])


def _fit(inputs: np.ndarray, truth: list[str], seed: int) -> tuple[Any, float | None]:
    """The pipeline fitted on these rows, its C chosen by stratified 3-fold cross-validation
    within them (the held-out tickets never take part); returns it and the C chosen."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    classes = Counter(truth)
    pipeline = _pipeline(len(classes), seed)
    folds = min(3, min(classes.values()))
    if len(classes) < 2 or folds < 2:  # too few of some class to cross-validate
        return pipeline.fit(inputs, truth), None
    search = GridSearchCV(
        pipeline,
        {"model__C": list(C_GRID)},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="accuracy",
    )
    search.fit(inputs, truth)
    return search.best_estimator_, float(search.best_params_["model__C"])


def _plain(value: Any) -> Any:
    """JSON-safe copy of a metrics structure (numpy numbers become float/int)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return round(float(value), 4)
    return value


def _accuracy(truth: list[str], predicted: list[str]) -> float | None:
    if not truth:
        return None
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def _evaluate(
    target: str,
    train: list[dict],
    test: list[dict],
    seen: list[bool],
    seed: int,
) -> dict:
    """Fit on `train`, judge on `test`: accuracy, the majority-class baseline, per-class
    precision/recall, and the same on complaints only and on wordings unseen in training."""
    from sklearn.metrics import classification_report

    truth_train = [row[target] for row in train]
    truth = [row[target] for row in test]
    pipeline, chosen_c = _fit(
        _inputs([r["text"] for r in train], [r["ticket_type"] for r in train]), truth_train, seed
    )
    predicted = list(
        pipeline.predict(_inputs([r["text"] for r in test], [r["ticket_type"] for r in test]))
    )
    majority = Counter(truth_train).most_common(1)[0][0]
    baseline = [majority] * len(truth)

    def subset(keep: list[bool]) -> dict:
        picked = [i for i, k in enumerate(keep) if k]
        return {
            "rows": len(picked),
            "accuracy": _accuracy([truth[i] for i in picked], [predicted[i] for i in picked]),
            "baseline_accuracy": _accuracy(
                [truth[i] for i in picked], [baseline[i] for i in picked]
            ),
        }

    labels = sorted(set(truth_train) | set(truth))
    return {
        "C": chosen_c,
        "accuracy": _accuracy(truth, predicted),
        "baseline_accuracy": _accuracy(truth, baseline),
        "baseline_class": majority,
        "complaints": subset([row["ticket_type"] == "complaint" for row in test]),
        "unseen_wording": subset([not s for s in seen]),
        "report": classification_report(
            truth, predicted, labels=labels, output_dict=True, zero_division=0
        ),
        "train_counts": dict(Counter(truth_train)),
        "test_counts": dict(Counter(truth)),
    }


def _names(rows: list[dict], target: str) -> dict[str, str]:
    """Code -> the teams' word for it, as the service plugin sent them."""
    return {row[target]: row.get(f"{target}_name") or row[target] for row in rows}


def train(
    session: Session,
    test_share: float = 0.2,
    seed: int = 2026,
    now: dt.datetime | None = None,
) -> dict:
    """Train the category and severity pipelines on the classified tickets opened before
    `now`, measure them on the latest `test_share` (time split), then refit both on every
    ticket and save them as the next version of the complaint model. Returns what `report`
    returns for the new version."""
    user = current_user(session)
    user.require("analysis.train", "训练投诉分类模型")
    now = now or utcnow()
    if not 0 < test_share < 1:
        raise CrmError(f"留出比例 {test_share} 不合适：请给 0 到 1 之间的数，如 0.2。")
    rows = session.info["pm"].hook.classified_tickets(session=session, since=None, until=now)
    if rows is None:
        raise CrmError("没有插件提供已评估的工单（需要售后服务插件）：无法训练投诉分类模型。")
    rows = sorted(
        (r for r in rows if (r.get("text") or "").strip() and r.get("category")),
        key=lambda r: r["opened_at"],
    )
    if len(rows) < MIN_TICKETS:
        raise CrmError(
            f"已评估的工单只有 {len(rows)} 张，至少要 {MIN_TICKETS} 张才能训练："
            "请先用 crm ticket assess 评估更多工单。"
        )
    held = max(1, round(len(rows) * test_share))
    train_rows, test_rows = rows[:-held], rows[-held:]
    if len(train_rows) < MIN_TICKETS // 2:
        raise CrmError(f"留出 {held} 张后只剩 {len(train_rows)} 张用于训练：请调小 --test-share。")
    trained_wordings = {without_codes(r["text"]) for r in train_rows}
    seen = [without_codes(r["text"]) in trained_wordings for r in test_rows]
    metrics: dict[str, Any] = {
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "test_from": f"{to_local(test_rows[0]['opened_at']):%Y-%m-%d %H:%M}",
        "test_to": f"{to_local(test_rows[-1]['opened_at']):%Y-%m-%d %H:%M}",
        "template_overlap": {
            "share": sum(seen) / len(seen),
            "held_out_seen": sum(seen),
            "held_out_unseen": len(seen) - sum(seen),
            "train_wordings": len(trained_wordings),
            "test_wordings": len({without_codes(r["text"]) for r in test_rows}),
        },
    }
    for target in TARGETS:
        metrics[target] = _evaluate(target, train_rows, test_rows, seen, seed)
    # The headline figure listings of saved models show (`crm analysis models`).
    metrics["accuracy"] = metrics["category"]["accuracy"]

    # The saved pipelines learn from every ticket, the newest included, with the C chosen
    # without the held-out part: the figures above are those of this same recipe.
    inputs = _inputs([r["text"] for r in rows], [r["ticket_type"] for r in rows])
    fitted, chosen = {}, {}
    for target in TARGETS:
        truth = [r[target] for r in rows]
        fitted[target] = _pipeline(len(set(truth)), seed)
        chosen[target] = metrics[target]["C"]
        if chosen[target] is not None and len(set(truth)) > 1:
            fitted[target].set_params(model__C=chosen[target])
        fitted[target].fit(inputs, truth)
    names = {target: _names(rows, target) for target in TARGETS}
    record = registry.save_model(
        session,
        KIND,
        {
            "pipelines": fitted,
            "names": names,
        },
        actor=user.name,
        features=["摘要文字（去掉房号后的字符 1-3 元组 TF-IDF）", "工单类型"],
        params={
            "test_share": test_share,
            "seed": seed,
            "split": "按受理时间，最近的工单留作检验",
            "analyzer": "char_wb",
            "ngram_range": list(NGRAMS),
            "C_grid": list(C_GRID),
            "C": chosen,
            "names": names,
            "refit_on_all": True,
        },
        metrics=_plain(metrics),
        rows=len(rows),
        cutoff=local_today(now),
    )
    return report(session, record.version)


def report(session: Session, version: int | None = None) -> dict:
    """A saved complaint model's version, date, settings and held-out metrics."""
    record = registry.require_model(session, KIND, version)
    return {
        "version": record.version,
        "trained_at": record.trained_at,
        "trained_by": record.trained_by,
        "rows": record.rows,
        "params": record.params,
        "metrics": record.metrics,
    }


def suggest(session: Session, text: str, ticket_type: str) -> dict | None:
    """The latest saved model's category and severity codes for a text, with their
    probabilities, the model version and the model's names for its codes (`names`: target ->
    code -> name, as the service plugin gave them); None when no model has been trained
    (nothing is trained here)."""
    if not (text or "").strip():
        raise CrmError("请给出工单摘要文字，才能给出分类建议。")
    record = registry.find_model(session, KIND)
    if record is None:
        return None
    try:
        saved = registry.load_estimator(record)
    # What unpickling raises when the saved classes no longer match the installed library.
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError, ValueError):
        raise CrmError(
            f"第 {record.version} 版投诉分类模型无法载入（可能由不同版本的 scikit-learn 保存）："
            f"请重新运行 {registry.TRAIN_COMMANDS[KIND]}。"
        ) from None
    inputs = _inputs([text], [ticket_type])
    out: dict[str, Any] = {"model_version": record.version}
    for target, pipeline in saved["pipelines"].items():
        probabilities = pipeline.predict_proba(inputs)[0]
        best = int(np.argmax(probabilities))
        out[target] = str(pipeline.classes_[best])
        out[f"{target}_confidence"] = float(probabilities[best])
    out["names"] = saved["names"]
    return out
