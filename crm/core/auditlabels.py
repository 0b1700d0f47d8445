"""How the audit log reads for people: its actions, objects, fields and coded values by their
Chinese labels, and the times in it in local time.

The log stores codes — table and column names, coded values, times as ISO text in UTC — and
that is what its hash chain covers and what `--format json` gives programs. A vocabulary names
them: {"actions": {action: label}, "entities": {table: label}, "fields": {column or
"table.column": label}, "values": {column or "table.column" or "setting:<key>": {code:
label}}}. The core names its own tables below; each plugin names its own through the
`audit_vocabulary` hook (the core knows no plugin).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from crm.core import vocab
from crm.core.clock import to_local
from crm.core.households import FIELD_LABELS
from crm.core.security import ROLES

# A long list shows its first items and how many there are.
LIST_SHOWN = 5
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?$")

CORE_VOCABULARY: dict[str, dict[str, Any]] = {
    "actions": {
        "create": "新增",
        "update": "修改",
        "delete": "删除",
        "view_personal": "查看完整个人信息",
        "search_personal": "按个人信息查找",
        "search_limit": "查找超过上限",
        "import": "导入",
        "export": "导出",
        "demo": "生成演示数据",
        "demo_data": "生成演示数据",
        "key_pin": "登记个人信息密钥",
        "key_backup": "备份个人信息密钥",
        "key_rotate": "轮换个人信息密钥",
        "key_rotate_start": "开始轮换个人信息密钥",
        "create_login": "创建数据库登录",
        "set_login_role": "调整登录的角色",
    },
    "entities": {
        "households": "客户家庭",
        "members": "家庭成员",
        "purchases": "成交",
        "referrals": "老带新推荐",
        "service_records": "服务记录",
        "projects": "楼盘",
        "buildings": "楼栋",
        "units": "房号",
        "settings": "设置",
        "logins": "数据库登录",
        "audit_log": "审计日志",
        "scheduler_jobs": "定时任务",
    },
    # A field named None is left out of what people read (it stays in the JSON).
    "fields": {
        # what many tables share
        "id": "内部编号",
        "name": "名称",
        "status": "状态",
        "note": "备注",
        "kind": "类型",
        "code": "代码",
        "value": "值",
        "role": "角色",
        "household_id": "客户家庭（内部编号）",
        "project_id": "楼盘（内部编号）",
        "building_id": "楼栋（内部编号）",
        "unit_id": "房号（内部编号）",
        "purchase_id": "成交（内部编号）",
        "created_by": "创建人",
        "active": "启用",
        "households": "户数",
        # households: the card's own labels (code, name and status under the table's name,
        # as other tables have columns of those names too; the card's project is project_id)
        **{
            f"households.{key}" if key in ("code", "name", "status") else key: label
            for key, label in FIELD_LABELS.items()
            if key not in ("project", "note")
        },
        # members
        "members.name": "姓名",
        "members.role": "身份",
        "phone_enc": "手机（密文）",
        "phone_hash": "手机（查找指纹）",
        "phone_tail": "手机尾号",
        "phone_masked": "手机（脱敏）",
        "alt_phone_enc": "备用电话（密文）",
        "alt_phone_hash": "备用电话（查找指纹）",
        "alt_phone_tail": "备用电话尾号",
        "alt_phone_masked": "备用电话（脱敏）",
        "id_number_enc": "身份证号（密文）",
        "id_number_hash": "身份证号（查找指纹）",
        "id_number_masked": "身份证号（脱敏）",
        # projects, buildings, units, purchases, referrals
        "city": "城市",
        "units.code": "房号",
        "floor_area": "面积（平方米）",
        "contract_no": "合同号",
        "purchase_date": "成交日期",
        "amount": "金额（元）",
        "channel": "渠道",
        "referrer_household_id": "推荐人（内部编号）",
        "referred_household_id": "被推荐人（内部编号）",
        "promotions_attended": "参加推介活动次数",
        "handover_date": "交房日期",
        "referred_on": "推荐日期",
        # the service register
        "record_no": "登记号",
        "opened_at": "登记时间",
        "closed_at": "关闭时间",
        "summary": "摘要",
        "result": "处理结果",
        "managed_by": "办理的插件",
        "service_records.kind": "类别",
    },
    "values": {
        "households.status": vocab.HOUSEHOLD_STATUS,
        "income_band": vocab.INCOME_BANDS,
        "housing": vocab.HOUSING,
        "education": vocab.EDUCATION,
        "member_tier": vocab.MEMBER_TIERS,
        "members.role": vocab.MEMBER_ROLES,
        "purchases.channel": vocab.PURCHASE_CHANNELS,
        "service_records.kind": vocab.SERVICE_KINDS,
        "service_records.channel": vocab.SERVICE_CHANNELS,
        "service_records.status": vocab.SERVICE_STATUS,
        "logins.role": ROLES,
    },
}


class AuditLabels:
    """One vocabulary made of the core's and every plugin's (the first to name a code wins)."""

    def __init__(self, vocabularies: Iterable[Mapping[str, Mapping]]):
        self.actions: dict[str, str] = {}
        self.entities: dict[str, str] = {}
        self.fields: dict[str, str] = {}
        self.values: dict[str, Mapping] = {}
        for part in vocabularies:
            for name in ("actions", "entities", "fields", "values"):
                mine = getattr(self, name)
                for code, label in (part.get(name) or {}).items():
                    mine.setdefault(code, label)

    def action(self, code: str) -> str:
        return self.actions.get(code, code)

    def entity(self, code: str) -> str:
        return self.entities.get(code, code)

    def field(self, entity: str, key: str) -> str | None:
        """A column or change key; a count keyed by a table (demo entries) is the table's name.
        None: a field kept for programs only (a de-duplication key, a reference's code)."""
        for name in (f"{entity}.{key}", key):
            if name in self.fields:
                return self.fields[name]
        return self.entities.get(key, key)

    def value(self, entity: str, entity_id: str | None, key: str, value: Any) -> str:
        """One value as people read it: a code by its label, a time in local time."""
        names = [f"{entity}.{key}", key]
        if entity == "settings" and entity_id:
            names.insert(0, f"setting:{entity_id}")  # a setting's value is coded by its key
        if isinstance(value, dict):  # a rule or a summary: each key by its own label
            if not value:
                return "无"
            inner = (
                f"{self.field(entity, k)}：{self.value(entity, entity_id, k, v)}"
                for k, v in value.items()
                if self.field(entity, k) is not None
            )
            return "{" + "，".join(inner) + "}"
        codes = next((self.values[name] for name in names if name in self.values), None)
        return _text(value, codes)

    def changes(self, entity: str, entity_id: str | None, changes: dict | None) -> str:
        """An entry's changes on one line: "状态：处理中 → 已完成；备注：空 → 已修好"."""
        if not changes:
            return ""
        parts = []
        for key, change in changes.items():
            title = self.field(entity, key)
            if title is None:
                continue
            if isinstance(change, list | tuple) and len(change) == 2:
                old, new = (self.value(entity, entity_id, key, v) for v in change)
                shown = f"{old} → {new}"
            else:
                shown = self.value(entity, entity_id, key, change)
            parts.append(f"{title}：{shown}")
        return "；".join(parts)


def collect(pm) -> AuditLabels:
    """The core's vocabulary and every loaded plugin's."""
    return AuditLabels([CORE_VOCABULARY, *(part for part in pm.hook.audit_vocabulary() if part)])


def _text(value: Any, codes: Mapping | None) -> str:
    if value is None:
        return "空"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list | tuple):
        if not value:
            return "无"
        shown = "、".join(_text(item, codes) for item in value[:LIST_SHOWN])
        return f"{shown} 等 {len(value)} 项" if len(value) > LIST_SHOWN else shown
    if isinstance(value, dict):
        return "{" + "，".join(f"{k}：{_text(v, codes)}" for k, v in value.items()) + "}"
    if codes is not None and isinstance(value, int | str):
        if value in codes:
            return str(codes[value])
        if isinstance(value, str) and "," in value:  # a setting holding several codes
            return "、".join(str(codes.get(part.strip(), part)) for part in value.split(","))
    if isinstance(value, str) and _ISO_TIME.match(value):
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:  # stored in UTC without an offset (SQLite)
            moment = moment.replace(tzinfo=dt.UTC)
        return f"{to_local(moment):%Y-%m-%d %H:%M}"
    return str(value)
