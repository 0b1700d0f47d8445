"""Saved models: every trained estimator is stored with its kind, version, training date,
settings and measured metrics (the `ana_models` table).

Training is always an explicit act that adds a new version; scoring and suggestions load the
latest saved version (or one named version) and say which one they used, so nothing is
retrained silently and an old score can be traced to the model that made it.
"""

from __future__ import annotations

import datetime as dt
import pickle
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from crm.core.errors import CrmError
from crm.core.paging import Page, between, fetch
from crm.plugins.analysis.models import SavedModel
from crm.plugins.analysis.vocab import MODEL_KINDS

# What each kind is, in the words the teams use.
KINDS = MODEL_KINDS
# The command that trains each kind, for the message when none is saved yet.
TRAIN_COMMANDS = {
    "segments": "crm analysis segments",
    "buy_again": "crm analysis propensity train --target buy_again",
    "refer": "crm analysis propensity train --target refer",
    "complaint": "crm analysis classify train",
}


def save_model(
    session: Session,
    kind: str,
    estimator: Any,
    *,
    actor: str,
    features: list[str] | None = None,
    params: dict | None = None,
    metrics: dict | None = None,
    rows: int = 0,
    cutoff: dt.date | None = None,
    horizon_months: int | None = None,
) -> SavedModel:
    """Store a fitted estimator as the next version of `kind` (no commit)."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    latest = session.scalar(select(func.max(SavedModel.version)).where(SavedModel.kind == kind))
    record = SavedModel(
        kind=kind,
        version=(latest or 0) + 1,
        trained_by=actor,
        features=list(features or []),
        params=dict(params or {}),
        metrics=dict(metrics or {}),
        rows=rows,
        cutoff=cutoff,
        horizon_months=horizon_months,
        payload=pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL),
    )
    session.add(record)
    session.flush()
    return record


def find_model(session: Session, kind: str, version: int | None = None) -> SavedModel | None:
    """The named version of `kind`, or its latest; None when none is saved."""
    query = select(SavedModel).where(SavedModel.kind == kind)
    if version is not None:
        query = query.where(SavedModel.version == version)
    return session.scalar(query.order_by(SavedModel.version.desc()).limit(1))


def require_model(session: Session, kind: str, version: int | None = None) -> SavedModel:
    """Like find_model, but a missing model is a sentence telling how to train one."""
    record = find_model(session, kind, version)
    if record is None:
        label = KINDS.get(kind, kind)
        if version is not None:
            raise CrmError(
                f"没有第 {version} 版{label}模型：用 crm analysis models 查看已保存的版本。"
            )
        raise CrmError(f"还没有训练过{label}模型：请先运行 {TRAIN_COMMANDS[kind]}。")
    return record


def load_estimator(record: SavedModel) -> Any:
    """The fitted estimator stored in a record (see the note on `SavedModel.payload`)."""
    return pickle.loads(record.payload)


def list_models(
    session: Session,
    kind: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """The saved models trained in [since, until), by kind and newest version first, without
    their payload: one page of them, with how many match."""
    query = (
        select(SavedModel)
        .options(defer(SavedModel.payload))  # a listing need not read the pickled estimators
        .where(*between(SavedModel.trained_at, since, until))
        .order_by(SavedModel.kind, SavedModel.version.desc())
    )
    if kind is not None:
        query = query.where(SavedModel.kind == kind)
    return fetch(session, query, limit, offset, scalars=True).map(
        lambda record: {
            "kind": record.kind,
            "version": record.version,
            "trained_at": record.trained_at,
            "trained_by": record.trained_by,
            "cutoff": record.cutoff,
            "horizon_months": record.horizon_months,
            "rows": record.rows,
            "metrics": record.metrics,
        }
    )
