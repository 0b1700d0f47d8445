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
