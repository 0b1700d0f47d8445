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


def audit_vocabulary() -> dict:
    """The audit log's names for campaigns, the lifecycle and the visit programme (the
    `audit_vocabulary` hook)."""
    from crm.plugins.campaigns.campaigns import CHANNELS, KINDS, OUTCOMES, PROPENSITY_TARGETS
    from crm.plugins.campaigns.lifecycle import KIND_NAMES

    return {
        "actions": {
            "assign": "分配外呼名单",
            "campaign_run": "执行营销活动",
            "plan": "安排生命周期触点",
        },
        "entities": {
            "camp_campaigns": "营销活动",
            "camp_runs": "营销活动执行",
            "camp_contacts": "外呼名单",
            "camp_contact_attempts": "联系记录",
            "camp_touchpoints": "生命周期触点",
            "camp_visits": "四年之约走访",
            "camp_visit_appointments": "走访约定",
            "camp_visit_opinions": "走访意见",
            "camp_rectifications": "整改项",
        },
        "fields": {
            "camp_campaigns.code": "活动代码",
            "camp_campaigns.kind": "活动类型",
            "target": "目标规则",
            "segments": "分群",
            "propensity": "倾向评分",
            "min": "最低",
            "projects": "项目",
            "stages": "客户阶段",
            "template": "话术模板",
            "attribution_days": "归因窗口（天）",
            "schedule_kind": "排期方式",
            "run_at": "执行时间",
            "cron": "cron 排期",
            "interval_minutes": "间隔（分钟）",
            "contact_id": "联系人（内部编号）",
            "camp_touchpoints.kind": "触点",
            "due_on": "到期日",
            "script": "话术",
            "due_month": "到期月份",
            "anniversary": "第几次四年之约",
            "visited_on": "走访日期",
            "visitor": "走访人",
            "opinions": "走访记录",
            "out_of_scope": "超出范围的解释",
            "satisfaction": "满意度",
            "follows_visit_id": "回访的走访（内部编号）",
            "corrects_visit_id": "更正的走访（内部编号）",
            "recorded_by": "记录人",
            "appointed_at": "约定时间",
            "contact": "客户联系人",
            "agreed_by": "约定人",
            "visit_id": "走访（内部编号）",
            "camp_visit_opinions.kind": "意见类别",
            "text": "内容",
            "issue": "不符合项",
            "measures": "整改措施",
            "done_on": "整改完成日期",
            "rounds": "整改次数",
            "rejected_on": "客户不满意的日期",
            "confirmed_on": "客户确认日期",
            "confirmed_visit_id": "确认的回访（内部编号）",
            "callers": "外呼负责人",
            "given": "分配户数",
        },
        "values": {
            "camp_campaigns.kind": KINDS,
            "camp_campaigns.channel": CHANNELS,
            "camp_touchpoints.channel": CHANNELS,
            "camp_touchpoints.kind": KIND_NAMES,
            "outcome": OUTCOMES,
            "camp_visit_opinions.kind": OPINION_KINDS,
            "schedule_kind": {"once": "一次", "cron": "cron 排期", "interval": "固定间隔"},
            "target": PROPENSITY_TARGETS,
        },
    }
