"""Analysis's codes and how people read them (light: the commands import it without loading
scikit-learn or the database layer)."""

from __future__ import annotations

# What each kind of saved model is, in the words the teams use.
MODEL_KINDS = {
    "segments": "客户分群",
    "buy_again": "再次购买倾向",
    "refer": "推荐新客倾向",
    "complaint": "投诉分类",
}

# How a segment run's number of segments was decided.
CHOSEN_BY = {"silhouette": "轮廓系数", "given": "指定"}


def audit_vocabulary() -> dict:
    """The audit log's names for analysis (the `audit_vocabulary` hook)."""
    return {
        "actions": {"train": "训练模型", "score": "评分"},
        "entities": {
            "ana_models": "分析模型",
            "ana_segment_runs": "客户分群",
            "ana_segments": "分群",
            "ana_household_segments": "客户所属分群",
            "ana_propensity_scores": "倾向评分",
        },
        "fields": {"version": "版本", "auc": "AUC", "households": "户数"},
        "values": {"ana_models.kind": MODEL_KINDS, "ana_propensity_scores.kind": MODEL_KINDS},
    }
