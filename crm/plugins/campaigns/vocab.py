"""The four-year visit programme's vocabularies: codes stored, labels shown.

A module of its own, without SQLAlchemy, so the `crm revisit` commands can name them in their
help and output while `crm --help` stays light; revisits.py uses the same ones.
"""

OPINION_KINDS = {
    "opinion": "意见",
    "suggestion": "建议",
    "praise": "表扬",
    "out_of_scope": "非管理范畴",
}
# Where a nonconformity stands (rectification_state).
RECTIFICATION_STATES = {
    "open": "待整改",
    "overdue": "整改逾期",
    "redo": "客户仍不满意，需再次整改",
    "awaiting": "已整改，待回访确认",
    "confirmed": "客户已确认",
}
# Why a visit is on the follow-up list (open_follow_ups).
FOLLOW_UP_REASONS = {
    "unsatisfied": "客户不满意，需整改并回访",
    "open": "有不符合项尚未整改",
    "overdue": "有整改项已过期限",
    "redo": "客户对整改仍不满意，需再次整改",
    "awaiting": "已整改，待回访确认客户满意",
}
