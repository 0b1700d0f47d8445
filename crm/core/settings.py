"""Whole-number settings kept in the settings table: one way to read, check and change them.

A value stored by hand (or by an older crm) that is not a whole number in range is one
sentence naming the key, wherever it is read; a change is audited with its old value.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.errors import CrmError
from crm.core.models import Setting


@dataclass(frozen=True)
class IntSetting:
    key: str
    default: int
    meaning: str  # what the number counts, for the error message: "每人每小时的查找次数"
    low: int = 1
    high: int = 1_000_000_000

    def parse(self, text: object) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            value = None
        if value is None or not self.low <= value <= self.high:
            raise CrmError(
                f"设置 {self.key}={str(text)!r} 看不懂：应为 {self.low} 到 {self.high} 之间的整数"
                f"（{self.meaning}）。"
            )
        return value

    def read(self, session: Session) -> int:
        text = session.scalar(select(Setting.value).where(Setting.key == self.key))
        return self.default if text is None else self.parse(text)

    def write(self, session: Session, text: object) -> tuple[str | None, str]:
        """Store a new value (checked first) in the caller's transaction, audited; returns
        (old, new). The caller checks who may."""
        new = str(self.parse(text))
        row = session.get(Setting, self.key)
        old = None if row is None else row.value
        if row is None:
            session.add(Setting(key=self.key, value=new))
        else:
            row.value = new
        audit.record(session, "update", "settings", self.key, {"value": [old, new]})
        return old, new
