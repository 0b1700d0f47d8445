"""Files a command writes where the user says (-o/--output, --rejects, --chart): missing folders
are made first, as most users expect of `-o reports/2026/list.csv`, and a file appears whole or
not at all. Every command that writes a file goes through here, and every CSV or XLSX it
writes (and `--format csv` on stdout) through `csv_writer` / `write_xlsx`, whose cells a
spreadsheet never runs as formulas."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
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


def write_xlsx(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    """One sheet, streamed (openpyxl's write-only mode): every text cell is stored as text,
    never as a formula, neutralised like CSV, with the control characters XLSX cannot hold
    written as visible escapes (ESC as \\x1b). Numbers, dates and booleans keep their type."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)

    def cells(values: Sequence[Any]) -> list[Any]:
        out = []
        for value in values:
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, _xlsx_text(value))
                cell.data_type = "s"  # text, whatever it looks like
                out.append(cell)
            else:
                out.append(value)
        return out

    sheet.append(cells(header))
    for row in rows:
        sheet.append(cells(row))
    book.save(path)
