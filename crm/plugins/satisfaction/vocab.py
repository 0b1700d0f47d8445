"""Early warnings' kinds and states and how people read them (light: the commands import it
without loading the queries)."""

KINDS = {
    "satisfaction_drop": "满意度下降",
    "project_drop": "项目满意率下滑",
    "repeat_complaint": "重复投诉",
    "broken_promise": "承诺未兑现",
}
STATUSES = {"pending": "待处理", "handed": "已转协调"}
