"""The tracking card (客户资料跟踪卡): sections from the core and from plugins, one page.

A section is a title and either label/value lines or a small table (or both). Plugins import
`CardSection` from here, so this module stays light: the database work is imported inside
`build_card`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm.core.render import cell_text, display_width, printable, table, terminal_width

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass
class CardSection:
    title: str
    lines: list[tuple[str, Any]] = field(default_factory=list)
    # Keys of `rows`, in display order; they double as the table headers.
    columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"title": self.title, "lines": dict(self.lines), "rows": self.rows}

    def render(self) -> str:
        out = [f"【{printable(self.title)}】\n"]
        if self.lines:
            width = max(display_width(label) for label, _ in self.lines)
            for label, value in self.lines:
                pad = " " * (width - display_width(label))
                out.append(f"  {printable(label)}：{pad}{cell_text(value)}\n")
        columns = self.columns or list(self.rows[0] if self.rows else [])
        if columns and (self.rows or not self.lines):
            text = table(self.rows, [(c, c) for c in columns], terminal_width() - 2)
            out.extend(f"  {line}\n" for line in text.splitlines())
        elif not self.lines:
            out.append("  （无记录）\n")
        return "".join(out)


@dataclass
class TrackingCard:
    code: str
    name: str
    sections: list[CardSection]

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "sections": [section.as_dict() for section in self.sections],
        }

    def render(self) -> str:
        # The name is stored data: one line, with no escape sequence reaching the terminal.
        head = f"客户资料跟踪卡  {cell_text(self.code)}  {cell_text(self.name)}\n"
        rule = "=" * max(display_width(head.strip()), 40) + "\n"
        return head + rule + "\n".join(section.render() for section in self.sections)


def build_card(session: Session, code: str) -> TrackingCard:
    """The household's card: core sections, then each plugin's, in registration order.

    Members shown in full are audited in the caller's transaction (commit it).
    """
    from crm.core.households import card_sections, get_household

    household = get_household(session, code)
    sections = card_sections(session, household)
    pm = session.info.get("pm")
    if pm is not None:
        # pluggy calls the last registered plugin first; the card reads better in load order.
        for contributed in reversed(
            pm.hook.tracking_card_sections(session=session, household=household)
        ):
            sections.extend(contributed)
    return TrackingCard(household.code, household.name, sections)
