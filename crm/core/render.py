"""One renderer for every listing: table (aligned for Chinese characters), JSON or CSV."""

from __future__ import annotations

import datetime as dt
import json
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import IO, Any

from crm.core.clock import to_local
from crm.core.security import is_control

FORMATS = ("table", "json", "csv")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` safe for a terminal: each character that can forge or hide text there
    (`crm.core.security.is_control`: C0/C1 controls such as ESC, bidi overrides and other
    format characters, line separators) shown as a visible escape (ESC as `\\x1b`, a tab as
    `\\t`), everything else unchanged. Every table cell, record line, card line, audit entry
    and error message goes through here."""
    if text.isprintable():  # almost every value: no character to look at one by one
        return text
    return "".join(_escape(ch) if is_control(ch) else ch for ch in text)


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    if text.isascii():  # codes, numbers, times: one column a character, nothing to look up
        return len(text)
    return len(text) + sum(1 for ch in text if unicodedata.east_asian_width(ch) in "WF")


def cell_text(value: Any) -> str:
    """How one value reads in a table cell or on the card."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dt.datetime):
        return to_local(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    # A cell is one line: a note or description written on several reads on, joined.
    return printable(" ".join(str(value).splitlines()))


def percent(value: float | None, digits: int = 1, missing: str | None = None) -> str | None:
    """A share as a percentage for a table cell ("40.3%"); `missing` where there is none."""
    return missing if value is None else f"{value:.{digits}%}"


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: Any, indent: int | None = 2) -> str:
    """JSON for people and programs (`indent=None`: one line, as JSON lines); no character
    `is_control` counts reaches the terminal raw: json.dumps escapes the C0 controls inside
    strings, and every other one is written here as its \\uXXXX escape (outside strings the
    text is ASCII and its only control is the newline of the indentation)."""
    text = json.dumps(data, ensure_ascii=False, default=_json_default, indent=indent)
    return "".join(_json_escape(ch) for ch in text)


def _json_escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}" if ch != "\n" and is_control(ch) else ch


def labelled(value: Any, vocabulary: Mapping[str, str] | None) -> Any:
    """A stored code as people read it: its label in `vocabulary` (lists item by item)."""
    if vocabulary is None:
        return value
    if isinstance(value, list):
        return [labelled(item, vocabulary) for item in value]
    coded = isinstance(value, (str, int)) and not isinstance(value, bool)
    return vocabulary.get(value, value) if coded else value


# A column: (key, header), or (key, header, vocabulary) when the value is a code that tables
# and CSV show by its Chinese label (JSON keeps the code: it is for programs).
Column = tuple[str, str] | tuple[str, str, Mapping[str, str]]


def _vocabulary(column: Column) -> Mapping[str, str] | None:
    return column[2] if len(column) > 2 else None


def shown_rows(rows: list[dict], columns: Sequence[Column]) -> list[dict]:
    """The rows with every coded column turned into its label."""
    coded = [(column[0], _vocabulary(column)) for column in columns if _vocabulary(column)]
    if not coded:
        return rows
    return [row | {key: labelled(row.get(key), vocab) for key, vocab in coded} for row in rows]


def render(
    rows: Iterable[dict],
    fmt: str = "table",
    columns: Sequence[Column] | None = None,
    out: IO[str] | None = None,
) -> None:
    """Write rows; `columns` is (key, header[, vocabulary]), defaulting to the first row's keys."""
    out = out or sys.stdout
    rows = list(rows)
    if columns is None:
        columns = [(key, key) for key in (rows[0] if rows else {})]
    keys = [column[0] for column in columns]
    if fmt == "json":
        out.write(to_json([{k: row.get(k) for k in keys} for row in rows]) + "\n")
        return
    rows = shown_rows(rows, columns)
    if fmt == "csv":
        from crm.core.outfiles import csv_writer

        writer = csv_writer(out)
        writer.writerow(keys)
        for row in rows:
            writer.writerow([_csv_value(row.get(key)) for key in keys])
    else:
        out.write(table(rows, columns, labelled=True))


def _csv_value(value: Any) -> Any:
    # Numbers stay numbers, without thousands separators a spreadsheet would read as text (a
    # negative one is no formula); text reads as in the table, and the CSV writer neutralises
    # what a spreadsheet would take for a formula.
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    return cell_text(value)


def table(rows: list[dict], columns: Sequence[Column], labelled: bool = False) -> str:
    """Rows as an aligned table; `labelled`: the coded columns already show their labels."""
    if not rows:
        return "（无记录）\n"
    if not labelled:
        rows = shown_rows(rows, columns)
    headers = [printable(column[1]) for column in columns]
    # Each cell with its width, measured once (a listing has thousands of cells).
    lines = [[(text, display_width(text)) for text in headers]] + [
        [(text, display_width(text)) for text in (cell_text(row.get(c[0])) for c in columns)]
        for row in rows
    ]
    widths = [max(line[i][1] for line in lines) for i in range(len(columns))]

    def line(cells: list[tuple[str, int]]) -> str:
        padded = [text + " " * (w - width) for (text, width), w in zip(cells, widths)]
        return "  ".join(padded).rstrip() + "\n"

    rule = "  ".join("-" * w for w in widths) + "\n"
    return line(lines[0]) + rule + "".join(line(cells) for cells in lines[1:])
