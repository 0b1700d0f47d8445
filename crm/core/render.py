"""One renderer for every listing: table (aligned for Chinese characters), JSON or CSV."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from crm.core.clock import to_local
from crm.core.figures import DECIMAL, MONEY, RATE, Figure
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
    """Terminal columns: CJK characters take two (see crm.core.textwidth)."""
    if text.isascii():  # codes, numbers, times: one column a character, nothing to look up
        return len(text)
    from crm.core.textwidth import display_width as width

    return width(text)


# An instant written into text in ISO form with its offset ("时限 2026-12-02T16:20:00+00:00", in
# notes written before times were formatted, or in stored JSON): people read it in local time.
_ISO_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})"
)


def local_times(text: str) -> str:
    """`text` with every ISO instant that carries an offset shown as local time."""
    if "T" not in text:  # almost every value: nothing to look for
        return text
    return _ISO_INSTANT.sub(_local_instant, text)


def _local_instant(match: re.Match) -> str:
    return to_local(dt.datetime.fromisoformat(match[0])).strftime("%Y-%m-%d %H:%M")


def cell_text(value: Any) -> str:
    """How one value reads on one line: a card line, a record line, a CSV cell."""
    return " ".join(_cell_lines(value).split("\n"))


def _cell_lines(value: Any) -> str:
    # A note or description written on several lines keeps them in a table cell (the row
    # grows, the columns stay aligned); `cell_text` joins them.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dt.datetime):
        return to_local(value).strftime("%Y-%m-%d %H:%M")
    # One format per kind of figure (crm.core.figures): a Decimal is money, any other float
    # without a declared kind is DECIMAL.
    if isinstance(value, Decimal):
        return MONEY(value)
    if isinstance(value, float):
        return DECIMAL(value)
    if isinstance(value, list | tuple):  # several values (causes, expectations): one line
        return "、".join(cell_text(item) for item in value)
    # People read an ISO instant written into a note in local time.
    return "\n".join(printable(local_times(line)) for line in str(value).splitlines())


def percent(value: float | None, digits: int = 1, missing: str | None = None) -> str | None:
    """A share as a percentage for a table cell ("40.3%"); `missing` where there is none."""
    if value is None:
        return missing
    return RATE(value) if digits == 1 else f"{value:.{digits}%}"


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
# and CSV show by its Chinese label (JSON keeps the code: it is for programs), or
# (key, header, FIGURE) when the value is a figure of one kind (MONEY, RATE, ...).
Column = tuple[str, str] | tuple[str, str, Mapping[str, str] | Figure]


def _vocabulary(column: Column) -> Mapping[str, str] | None:
    extra = column[2] if len(column) > 2 else None
    return extra if isinstance(extra, Mapping) else None


def _figure(column: Column) -> Figure | None:
    extra = column[2] if len(column) > 2 else None
    return extra if isinstance(extra, Figure) else None


# The records inside a record (a ticket's events, work orders): (title, key, columns). Its
# value is a list of records or, in JSON only, a mapping of records by name (a decision's
# work orders by number).
Section = tuple[str, str, Sequence[Column]]


def json_row(row: dict, columns: Sequence[Column], sections: Sequence[Section] = ()) -> dict:
    """A row for programs: its columns, and only them, as `json_record` gives a record (a
    coded one as its stable code with its label beside it, the records of its sections
    labelled the same way)."""
    return json_record({column[0]: row.get(column[0]) for column in columns}, columns, sections)


def json_record(
    record: Mapping[str, Any], labels: Sequence[Column], sections: Sequence[Section] = ()
) -> dict:
    """One record for programs (a `show`, the result of an action): every field as it is,
    beside each coded one its label (`"status": "open", "status_label": "处理中"`), and the
    same for each record of its sections, by the section's columns: a nested record is read
    by the same programs as the record around it."""
    coded = {column[0]: _vocabulary(column) for column in labels if _vocabulary(column)}
    nested = {key: columns for _title, key, columns in sections}
    out = {}
    for key, value in record.items():
        if key in nested:
            value = _json_records(value, nested[key])
        out[key] = value
        if key in coded and f"{key}_label" not in record:
            out[f"{key}_label"] = labelled(value, coded[key])
    return out


def _json_records(value: Any, columns: Sequence[Column]) -> Any:
    """A section's records, a list or a mapping by name, each labelled by `columns`; what
    holds no records is left as it is."""
    if isinstance(value, list):
        return [json_record(row, columns) if isinstance(row, Mapping) else row for row in value]
    if isinstance(value, Mapping):
        return {
            name: json_record(row, columns) if isinstance(row, Mapping) else row
            for name, row in value.items()
        }
    return value


def shown_rows(rows: list[dict], columns: Sequence[Column]) -> list[dict]:
    """The rows with every coded column turned into its label."""
    coded = [(column[0], _vocabulary(column)) for column in columns if _vocabulary(column)]
    if not coded:
        return rows
    return [row | {key: labelled(row.get(key), vocab) for key, vocab in coded} for row in rows]


def shown_value(value: Any, column: Column) -> str:
    """One value (already labelled by `shown_rows`) as a table cell or a record line shows
    it: by the column's figure kind, else as text (the lines of a note kept)."""
    figure = _figure(column)
    plain = isinstance(value, int | float | Decimal | str | None) and not isinstance(value, bool)
    return figure(value) if figure is not None and plain else _cell_lines(value)


def render(
    rows: Iterable[dict],
    fmt: str = "table",
    columns: Sequence[Column] | None = None,
    out: IO[str] | None = None,
    drop: Sequence[str] = (),
    sections: Sequence[Section] = (),
) -> None:
    """Write rows; `columns` is (key, header[, vocabulary or figure]), defaulting to the first
    row's keys. A table fits the terminal (`terminal_width`): long text wraps inside its cell
    and, when that is not enough, columns are left out, first the keys in `drop` (in that
    order), then from the right (never the first); a note on stderr names them. `sections`
    label the records inside each row in JSON (`json_row`); a table or CSV shows those
    columns as the rows give them."""
    out = out or sys.stdout
    rows = list(rows)
    if columns is None:
        columns = [(key, key) for key in (rows[0] if rows else {})]
    keys = [column[0] for column in columns]
    if fmt == "json":
        out.write(to_json([json_row(row, columns, sections) for row in rows]) + "\n")
        return
    if fmt == "csv":
        from crm.core.outfiles import csv_writer

        rows = shown_rows(rows, columns)
        writer = csv_writer(out)
        writer.writerow(keys)
        for row in rows:
            writer.writerow([_csv_value(row.get(key)) for key in keys])
        return
    fitted = fit_table(rows, columns, terminal_width(), drop)
    out.write(fitted.text)
    if fitted.note:
        out.flush()
        sys.stderr.write(fitted.note + "\n")


def _csv_value(value: Any) -> Any:
    # Numbers stay numbers, without thousands separators a spreadsheet would read as text (a
    # negative one is no formula); text reads as in the table, and the CSV writer neutralises
    # what a spreadsheet would take for a formula.
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    return cell_text(value)


# --- tables that fit the terminal ------------------------------------------------------------

# Where no terminal tells its width (cron, a pipe with no terminal at all, tests): wide enough
# for a summary beside its key columns, narrow enough for a laptop screen or a printed page.
DEFAULT_WIDTH = 120
GAP = 2  # spaces between columns
# A column whose cells are at most this wide is never wrapped (codes, dates, names, figures);
# a wider one (a summary, a note) may be wrapped down to this width.
WRAP_MIN = 24
# A wrapped cell shows at most this many lines in a table, the last ending in "…" when cut;
# the whole text is in `show` and --format json.
MAX_CELL_LINES = 3


def terminal_width() -> int:
    """Columns a table may use: $COLUMNS when set; else the width of the terminal that stdout
    or, when stdout is piped (`crm ticket list | less`), stderr writes to; else 120."""
    import os

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            continue
    return DEFAULT_WIDTH


def table(rows: list[dict], columns: Sequence[Column], width: int | None = None) -> str:
    """The rows as an aligned table within `width` columns (None: the terminal's), with what
    was left out to fit said on a last line."""
    from crm.core.textwidth import wrap

    fitted = fit_table(rows, columns, width or terminal_width())
    if not fitted.note:
        return fitted.text
    return fitted.text + "".join(f"{line}\n" for line in wrap(fitted.note, fitted.width))


@dataclass
class Fitted:
    """A table made to fit: its text, the headers of the columns it left out, whether some
    cell was cut short, and the width it was fitted to."""

    text: str
    dropped: list[str]
    cut: bool
    width: int

    @property
    def note(self) -> str | None:
        """What the table does not show and where to see it, for the user."""
        if not self.dropped and not self.cut:
            return None
        parts = []
        if self.dropped:
            parts.append(f"表中未显示 {'、'.join(self.dropped)}")
        if self.cut:
            parts.append(f"过长的内容只显示前 {MAX_CELL_LINES} 行")
        return (
            f"（终端宽 {self.width} 列：{'；'.join(parts)}。"
            "完整内容请用 --format json 或相应的 show 命令查看，或加宽终端。）"
        )


def fit_table(
    rows: list[dict], columns: Sequence[Column], width: int, drop: Sequence[str] = ()
) -> Fitted:
    """The table within `width` columns: long text wrapped in its cell (at most
    MAX_CELL_LINES lines), columns left out when wrapping is not enough."""
    if not rows:
        return Fitted("（无记录）\n", [], False, width)
    rows = shown_rows(rows, columns)
    cells = [[shown_value(row.get(column[0]), column) for column in columns] for row in rows]
    headers = [printable(column[1]) for column in columns]
    numeric = [
        _figure(column) is not None
        or all(_is_number(row.get(column[0])) for row in rows if row.get(column[0]) is not None)
        and any(row.get(column[0]) is not None for row in rows)
        for column in columns
    ]
    shown, widths = _layout(headers, cells, [c[0] for c in columns], width, drop)
    cut = False

    def lines(values: list[str]) -> list[str]:
        nonlocal cut
        wrapped = []
        for i in shown:
            column_lines, shortened = _wrap(values[i], widths[i])
            wrapped.append(column_lines)
            cut = cut or shortened
        out = []
        for n in range(max(len(w) for w in wrapped)):
            parts = []
            for i, column_lines in zip(shown, wrapped):
                text = column_lines[n] if n < len(column_lines) else ""
                pad = " " * (widths[i] - display_width(text))
                parts.append(pad + text if numeric[i] else text + pad)
            out.append("  ".join(parts).rstrip() + "\n")
        return out

    rule = "  ".join("-" * widths[i] for i in shown) + "\n"
    body = [line for values in cells for line in lines(values)]
    dropped = [
        headers[i]
        for i in range(len(columns))
        if i not in shown and any(values[i] for values in cells)
    ]
    return Fitted("".join(lines(headers) + [rule] + body), dropped, cut, width)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _wrap(text: str, width: int) -> tuple[list[str], bool]:
    """The cell's lines within `width`, and whether it had to be cut short."""
    from crm.core.textwidth import shorten, wrap

    if "\n" not in text and display_width(text) <= width:
        return [text], False
    lines = wrap(text, width)
    if len(lines) <= MAX_CELL_LINES:
        return lines, False
    last = shorten(lines[MAX_CELL_LINES - 1] + "…", width)
    return lines[: MAX_CELL_LINES - 1] + [last], True


def _layout(
    headers: list[str], cells: list[list[str]], keys: list[str], width: int, drop: Sequence[str]
) -> tuple[list[int], dict[int, int]]:
    """Which columns to show (indexes, in order) and how wide each is."""
    count = len(headers)
    natural = [
        max([display_width(headers[i])] + [_widest_line(row[i]) for row in cells])
        for i in range(count)
    ]
    floor = [
        n if n <= WRAP_MIN else max(WRAP_MIN, display_width(headers[i]))
        for i, n in enumerate(natural)
    ]
    shown = list(range(count))

    def needed(widths: list[int]) -> int:
        return sum(widths[i] for i in shown) + GAP * (len(shown) - 1)

    # A table that does not fit as it is first loses the columns with nothing in them; then,
    # while wrapping is not enough, the columns the command named, then from the right.
    if needed(natural) > width:
        shown = [i for i in shown if i == 0 or any(row[i] for row in cells)]
    order = [keys.index(key) for key in drop if key in keys and keys.index(key) in shown[1:]]
    order += [i for i in reversed(shown[1:]) if i not in order]

    while needed(floor) > width and order:
        shown.remove(order.pop(0))
    if needed(floor) > width:
        # Even the first column alone is wider: wrap what can wrap down to its header.
        floor = [
            max(display_width(headers[i]), 8) if natural[i] > WRAP_MIN else floor[i]
            for i in range(count)
        ]
    widths = {i: floor[i] for i in shown}
    spare = width - needed(floor)
    # Widen the wrapped columns toward their natural width, each by its share of what is missing.
    lacking = {i: natural[i] - widths[i] for i in shown if natural[i] > widths[i]}
    total = sum(lacking.values())
    if spare > 0 and total:
        for i, lack in lacking.items():
            widths[i] += min(lack, spare * lack // total)
        left = width - needed([widths.get(i, 0) for i in range(count)])
        for i in lacking:
            extra = min(left, natural[i] - widths[i])
            widths[i] += extra
            left -= extra
    return shown, widths


def _widest_line(text: str) -> int:
    return max((display_width(line) for line in text.split("\n")), default=0)
