"""A section of the tracking card: a title and either label/value lines or a small table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CardSection:
    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"title": self.title, "lines": dict(self.lines), "rows": self.rows}
