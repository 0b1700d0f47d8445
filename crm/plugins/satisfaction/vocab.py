"""Early warnings' kinds and states and how people read them (light: the commands import it
without loading the queries)."""

KINDS = {
    "satisfaction_drop": "满意度下降",
    "project_drop": "项目满意率下滑",
    "repeat_complaint": "重复投诉",
    "broken_promise": "承诺未兑现",
}
STATUSES = {"pending": "待处理", "handed": "已转协调"}


def audit_vocabulary() -> dict:
    """The audit log's names for satisfaction monitoring (the `audit_vocabulary` hook)."""
    from crm.core import vocab
    from crm.plugins.satisfaction.surveys import SURVEY_KINDS

    return {
        "entities": {
            "sat_surveys": "满意度调查",
            "sat_survey_aspects": "调查的各方面评分",
            "sat_feedback": "客情预警",
            "sat_ticket_causes": "工单投诉原因",
        },
        "fields": {
            "key": None,  # the feedback's de-duplication key: for programs only
            "sat_feedback.kind": "预警类型",
            "reason": "原因",
            "strength": "强度",
            "detected_at": "发现时间",
            "handed_at": "转交时间",
            "records": "条数",
            "sat_surveys.kind": "调查类型",
            "ticket_number": "登记号",
            "reference": None,  # the source record's internal reference ("camp_visit:1")
            "team": "班组",
            "category": "类别",
            "channel": "渠道",
            "taken_at": "调查时间",
            "entered_at": "登记时间",
            "csat": "满意度",
            "nps": "推荐意愿",
            "comment": "意见",
            "taken_by": "调查人",
            "gap_total": "差距合计",
            "aspect_count": "方面数",
            "surveys": "调查份数",
            "aspects": "方面数",
            "periodic": "定期调查",
            "visit": "走访问卷",
            "revisit": "工单回访",
        },
        "values": {
            "sat_feedback.kind": KINDS,
            "sat_feedback.status": STATUSES,
            "sat_surveys.kind": SURVEY_KINDS,
            "sat_surveys.category": vocab.COMPLAINT_CATEGORIES,
            "sat_surveys.channel": vocab.SERVICE_CHANNELS,
            "kind": SURVEY_KINDS,
        },
    }
