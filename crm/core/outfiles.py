"""Files a command writes where the user says (-o/--output, --rejects, --chart): missing folders
are made first, as most users expect of `-o reports/2026/list.csv`, and a file appears whole or
not at all. Every command that writes a file goes through here, and every CSV or XLSX it
writes (and `--format csv` on stdout) through `csv_writer` / `write_xlsx`, whose cells a
spreadsheet never runs as formulas."""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from crm.core.errors import CrmError


def make_folder(folder: Path) -> Path:
    """Create `folder` and its parents if missing; one sentence if that cannot be done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CrmError(f"无法创建文件夹 {folder}：已有同名文件。") from None
    except OSError as exc:
        raise CrmError(f"无法创建文件夹 {folder}：{exc.strerror}。") from None
    return folder


@contextmanager
def output_file(path: Path) -> Iterator[Path]:
    """A path beside `path` for the block to write; it takes the name `path` when the block
    ends and is removed if the block fails, so no half-written file is left behind (a file
    already there keeps its content). Write errors are one sentence."""
    path = Path(path)
    if path.is_dir():
        raise CrmError(f"{path} 是文件夹：请给出文件名，例如 {path / 'export.csv'}。")
    make_folder(path.parent)
    part = path.with_name(f"{path.name}.part")
    try:
        yield part
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise CrmError(f"无法写入文件 {path}：{exc.strerror}。") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


# --- cells a spreadsheet opens safely ---------------------------------------------------------
#
# A text cell starting with one of these is read by Excel, LibreOffice and Google Sheets as a
# formula (=HYPERLINK(...) sends the row to a web site, =cmd|... runs programs). OWASP's rule
# for CSV injection: put a single quote in front, so the cell reads as the text it is.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Characters an XLSX file cannot hold (openpyxl refuses them with IllegalCharacterError).
_XLSX_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralised(text: str) -> str:
    """`text` as a spreadsheet cell that is never taken for a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value: Any) -> Any:
    # Only text is neutralised: a real number (-5, Decimal) is no formula and stays a number.
    return neutralised(value) if isinstance(value, str) else value


class SafeCsvWriter:
    """csv.writer for files and stdout whose text cells cannot run as formulas."""

    def __init__(self, handle: IO[str]):
        self._writer = csv.writer(handle)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(handle: IO[str]) -> SafeCsvWriter:
    """The CSV writer every CSV output uses (exports, lists, reject files, --format csv)."""
    return SafeCsvWriter(handle)


def _xlsx_text(text: str) -> str:
    text = _XLSX_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return neutralised(text)


# The column widths of a sheet are fitted to its header and first rows: a sheet is streamed, and
# its widths are written before its rows.
XLSX_SAMPLE_ROWS = 1000
XLSX_MAX_WIDTH = 60  # a long note wraps in Excel rather than pushing the next columns away
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"


def _xlsx_value(value: Any) -> Any:
    # Excel has no time zones: an aware time is written as business-zone wall time (as import
    # reads it), a real date-time Excel sorts, filters and computes with.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        from crm.core.clock import to_local

        return to_local(value).replace(tzinfo=None)
    return value


def _shown_width(value: Any) -> int:
    """Columns a value takes in Excel, counting a Chinese character as two."""
    from crm.core.textwidth import display_width

    if value is None:
        return 0
    if isinstance(value, dt.datetime):
        return len("2026-12-02 10:00")
    if isinstance(value, dt.date):
        return len("2026-12-02")
    if isinstance(value, bool):
        return 5
    if isinstance(value, float):
        return len(f"{value:,.2f}")
    text = str(value)
    return max((display_width(line) for line in text.splitlines()), default=0)


def write_xlsx(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    """One sheet, streamed (openpyxl's write-only mode): every text cell is stored as text,
    never as a formula, neutralised like CSV, with the control characters XLSX cannot hold
    written as visible escapes (ESC as \\x1b). Numbers, dates and booleans keep their type;
    times are real Excel date-times in the business zone. The header row is frozen and the
    column widths fit the header and the first XLSX_SAMPLE_ROWS rows."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    bold = Font(bold=True)

    def cells(values: Sequence[Any], head: bool = False) -> list[Any]:
        out = []
        for value in values:
            value = _xlsx_value(value)
            if value is None:
                out.append(None)
                continue
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, _xlsx_text(value))
                cell.data_type = "s"  # text, whatever it looks like
            else:
                cell = WriteOnlyCell(sheet, value)
                if isinstance(value, dt.datetime):
                    cell.number_format = DATETIME_FORMAT
                elif isinstance(value, dt.date):
                    cell.number_format = DATE_FORMAT
            if head:
                cell.font = bold
            out.append(cell)
        return out

    rows = iter(rows)
    first = list(islice(rows, XLSX_SAMPLE_ROWS))
    widths = [_shown_width(title) for title in header]
    for row in first:
        for index, value in enumerate(row):
            if index < len(widths):
                widths[index] = max(widths[index], _shown_width(value))
    for index, width in enumerate(widths, start=1):
        # +2: Excel's width is in digits of its font, and a cell has padding.
        sheet.column_dimensions[get_column_letter(index)].width = min(width + 2, XLSX_MAX_WIDTH)
    sheet.freeze_panes = "A2"
    sheet.append(cells(header, head=True))
    for row in chain(first, rows):
        sheet.append(cells(row))
    book.save(path)
