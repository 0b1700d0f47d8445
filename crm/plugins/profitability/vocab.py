"""Profitability's codes and how people read them (light: the commands import it without
loading the models or the database layer)."""

from __future__ import annotations

# Time units of the purchase models.
UNITS = {"days": "天", "weeks": "周", "months": "月"}
# Purchase-count models, by their names in the literature.
MODEL_LABELS = {"mbgnbd": "MBG/NBD", "bgnbd": "BG/NBD"}


def audit_vocabulary() -> dict:
    """The audit log's names for profitability (the `audit_vocabulary` hook): its tables, and
    each coded setting's values by the setting's key."""
    from crm.plugins.profitability.settings import PREFIX, SPECS

    return {
        "entities": {
            "prof_model_fits": "购买模型拟合",
            "prof_runs": "终身价值评估",
            "prof_household_values": "客户终身价值",
        },
        "values": {
            f"setting:{PREFIX}{key}": spec.labels
            for key, spec in SPECS.items()
            if spec.labels is not None
        },
    }
