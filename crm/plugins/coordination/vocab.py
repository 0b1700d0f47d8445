"""The states of a coordination decision and how the log names them (light: the commands
import it without loading the cycle)."""

STATUSES = {
    "collected": "已收集",
    "assessed": "已评估",
    "dispatched": "已派工",
    "closed": "已办结",
    "no_plan": "无方案",
    "undispatched": "未派工",
}

# Where the work a decision dispatched stands (crm.core.chain.WorkOutcome), as the log says it.
OUTCOMES = {
    "open": "处理中",
    "closed": "已完成",
    "cancelled": "已取消",
    "returned": "已退回",
    "unknown": "未知",
}


def audit_vocabulary() -> dict:
    """The audit log's names for coordination (the `audit_vocabulary` hook)."""
    return {
        "actions": {
            "collect": "协调：收集反馈",
            "assess": "协调：评估方案",
            "dispatch": "派工",
            "close": "协调：决策办结",
        },
        "entities": {"coord_decisions": "协调决策"},
        "values": {"coord_decisions.status": STATUSES},
    }
