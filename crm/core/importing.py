"""Bulk import of households, members, purchases and service records from CSV, JSON lines and
XLSX files.

The file is read twice, as a stream. The first pass writes nothing: it checks that the whole
file can be read (encoding, CSV quoting, XLSX limits) and puts every row's key with its line
into a temporary table, so a key the file holds more than once is known before any row is
written. The second pass works in chunks: each chunk is converted with the compiled schema
(`crm.core.schemas`, which refuses any value the database could not hold), its duplicated
keys rejected, resolved against the database with one query per referenced table, compared
with the stored rows, and written with one executemany for inserts and one for updates. Memory
stays flat whatever the file size. Unchanged rows are not written, so importing the same file
twice changes nothing. Bad rows go to a reject file (line, column, reason) and the good rows
land, unless `strict` asks for all or nothing. Imports run one at a time: the second waits
for the first to commit (SQLite's write lock, a PostgreSQL advisory lock).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gc
import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import count, islice
from operator import call, itemgetter
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.db import begin_write
from crm.core.errors import CrmError
from crm.core.models import (
    AuditEntry,
    Building,
    Household,
    Member,
    Project,
    Purchase,
    Referral,
    ServiceRecord,
    Unit,
    utcnow,
)
from crm.core.outfiles import csv_writer, make_folder
from crm.core.privacy import reads_sealed, seal_member_fields
from crm.core.render import printable
from crm.core.schemas import KIND_LABELS, SCHEMAS, compile_schema, header_index, header_key
from crm.core.settings import IntSetting

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx"}
KINDS = tuple(SCHEMAS)
CHUNK_SIZE = 5000
REJECT_HEADER = ("行号", "列", "原因")
_READ_BLOCK = 1 << 20
# One import at a time on PostgreSQL (SQLite's write lock does the same there): two imports of
# the same keys would otherwise both insert them, and the later commit fails.
IMPORT_LOCK = 0x5E7C_0002
# XLSX limits (settings table; a zip of 10 MB can hold a sheet of hundreds of MB).
XLSX_MAX_MB_KEY = "import.xlsx_max_mb"
XLSX_MAX_ROWS_KEY = "import.xlsx_max_rows"
# In the order of Limits' fields.
LIMIT_SETTINGS = {
    XLSX_MAX_MB_KEY: IntSetting(XLSX_MAX_MB_KEY, 100, "XLSX 文件的兆字节数"),
    XLSX_MAX_ROWS_KEY: IntSetting(XLSX_MAX_ROWS_KEY, 200_000, "XLSX 工作表的行数"),
}
# Headers beyond this column are not read: a forged sheet dimension would otherwise make
# openpyxl pad every row to 16,384 cells.
XLSX_MAX_COLUMNS = 200

Progress = Callable[[int], None]


@dataclass
class ImportResult:
    kind: str
    path: Path
    sha256: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        created = "".join(
            f"，新建{_CREATED_LABELS[name]} {count}"
            for name, count in self.created.items()
            if count
        )
        text = (
            f"{KIND_LABELS[self.kind]}导入：新增 {self.inserted}，更新 {self.updated}，"
            f"未变 {self.unchanged}，拒绝 {self.rejected}{created}"
        )
        if self.rejects_path is not None:
            text += f"；拒绝明细见 {self.rejects_path}"
        return text + "。"


_CREATED_LABELS = {
    "projects": "项目",
    "buildings": "楼栋",
    "units": "房号",
    "referrals": "推荐关系",
    "status": "业主状态",
}


class ImportRejected(CrmError):
    """A strict import found bad rows: nothing may be written (the caller rolls back)."""

    def __init__(self, result: ImportResult):
        super().__init__(
            f"严格模式：有 {result.rejected} 行不合格，本次导入未写入任何数据；"
            f"请按 {result.rejects_path} 修正后重新导入。"
        )
        self.result = result


# ---------------------------------------------------------------------------------------------
# Reading files


@dataclass
class BadRecord:
    """A line that could not even be split into cells (e.g. invalid JSON)."""

    reason: str


# Key cells of one batch of records: (cells, lines), where a cell is what the `pick` given to
# `Source.key_cells` took from a record (a tuple of cells for several positions).
KeyCells = tuple[list[Any], list[int]]


@dataclass
class Source:
    headers: list[str]
    records: Iterator[tuple[int, Sequence[Any] | BadRecord]]
    position: Callable[[], int]  # bytes of the file consumed so far, for progress
    # The first pass's reader: batches of key cells with their lines, for `pick` (an
    # itemgetter) over the same records as `records` (bad ones and rows too short for `pick`
    # left out). A format may read them faster than through `records`.
    key_cells: Callable[[Callable[[Sequence[Any]], Any], int], Iterator[KeyCells]] | None = None

    def key_batches(self, pick: Callable[[Sequence[Any]], Any], size: int) -> Iterator[KeyCells]:
        if self.key_cells is not None:
            return self.key_cells(pick, size)
        return _key_cells(self.records, pick, size)


def _key_cells(
    records: Iterator[tuple[int, Sequence[Any] | BadRecord]],
    pick: Callable[[Sequence[Any]], Any],
    size: int,
) -> Iterator[KeyCells]:
    for batch in _batches(records, size):
        cells, lines = [], []
        for line, record in batch:
            if record.__class__ is BadRecord:
                continue
            try:
                cells.append(pick(record))
            except IndexError:  # a short row: the second pass rejects it
                continue
            lines.append(line)
        yield cells, lines


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise CrmError(
            f"无法从扩展名判断 {path.name} 的格式：请用 --format 指定 csv、jsonl 或 xlsx。"
        ) from None


def scan_file(path: Path, text: bool = True) -> tuple[str, bool]:
    """The file's SHA-256 and, for a text file, whether all of it is UTF-8: one pass in
    blocks, so memory stays flat. The whole file counts, since a legacy GBK file often starts
    with pages of ASCII before its first Chinese character."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")() if text else None
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
            if decoder is not None:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    decoder = None
    utf8 = decoder is not None
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)  # a file cut inside a character
        except UnicodeDecodeError:
            utf8 = False
    return digest.hexdigest(), utf8


def detect_encoding(path: Path, utf8: bool) -> str:
    """BOM -> utf-8-sig; else UTF-8 if the whole file decodes (`scan_file`); else GB18030 (a
    superset of the GBK that Chinese Excel writes)."""
    if not utf8:
        return "gb18030"
    with path.open("rb") as handle:
        return "utf-8-sig" if handle.read(3) == codecs.BOM_UTF8 else "utf-8"


@dataclass(frozen=True)
class Limits:
    xlsx_max_mb: int
    xlsx_max_rows: int


def import_limits(session: Session) -> Limits:
    """The import limits from the settings table (their defaults where not set)."""
    return Limits(*(setting.read(session) for setting in LIMIT_SETTINGS.values()))


def list_import_limits(session: Session) -> list[dict[str, Any]]:
    """Each import limit: key, value in force, default."""
    return [
        {"key": key, "value": setting.read(session), "default": setting.default}
        for key, setting in LIMIT_SETTINGS.items()
    ]


def set_import_limit(session: Session, key: str, value: str) -> tuple[str | None, str]:
    """Change one import limit; returns (old, new). Audited like every settings change."""
    audit.current_user(session).require("import.configure", "修改导入上限")
    if key not in LIMIT_SETTINGS:
        raise CrmError(f"没有导入设置“{key}”：可用 {'、'.join(LIMIT_SETTINGS)}。")
    return LIMIT_SETTINGS[key].write(session, value)


@contextmanager
def open_source(
    path: Path, fmt: str, encoding: str = "utf-8", limits: Limits | None = None
) -> Iterator[Source]:
    """The file's header and records. `encoding` is that of a text file, already chosen
    (see `detect_encoding`); `limits` bound an XLSX file."""
    if fmt == "xlsx":
        with _xlsx_source(
            path, limits or Limits(*(s.default for s in LIMIT_SETTINGS.values()))
        ) as source:
            yield source
        return
    with path.open("rb") as raw:
        try:
            text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        except LookupError:
            raise CrmError(
                f"不认识的编码“{encoding}”：可用 utf-8、utf-8-sig、gbk、gb18030。"
            ) from None
        try:
            yield (_csv_source if fmt == "csv" else _jsonl_source)(text, raw.tell)
        except _Undecodable:
            raise CrmError(
                f"文件 {path.name} 第 {_undecodable_line(path, encoding)} 行附近含有不是 "
                f"{encoding} 编码的字节："
                "请用 --encoding 指定正确的编码（如 gbk、utf-8）。"
            ) from None
        finally:
            text.detach()


class _Undecodable(Exception):
    """A text file's bytes stopped decoding."""


def _undecodable_line(path: Path, encoding: str) -> int:
    """The line of the first byte that does not decode (the reader decodes ahead in blocks,
    so it cannot tell)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return line + block.count(b"\n", 0, max(exc.start, 0))
            line += block.count(b"\n")
    return line


_CSV_REASONS = {
    "unexpected end of data": "文件在引号内结束：最后一行不完整（引号没有闭合），文件可能被截断",
    "field larger than field limit": f"有单元格超过 {csv.field_size_limit():,} 个字符",
}


def _csv_reason(error: csv.Error) -> str:
    text = str(error)
    for start, reason in _CSV_REASONS.items():
        if text.startswith(start):
            return reason
    if "expected after" in text:
        return "引号用法有误：带引号的单元格在结束引号后应紧跟逗号（单元格内的引号应写成两个）"
    return "该行无法按 CSV 格式读取"


def _csv_source(text: io.TextIOWrapper, position: Callable[[], int]) -> Source:
    # strict: a quote left open at the end of the file is an error, not a quietly closed cell
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CrmError(f"第 1 行（列名）无法读取：{_csv_reason(exc)}。") from None
    except UnicodeDecodeError:
        raise _Undecodable from None
    if header is None:
        raise CrmError("文件是空的：第 1 行应为列名。")

    def records() -> Iterator[tuple[int, Sequence[Any] | BadRecord]]:
        last = reader.line_num
        while True:
            # The for loop is the fast path; a bad record leaves it, and reading resumes on
            # the next line.
            try:
                for record in reader:
                    start, last = last + 1, reader.line_num
                    # Excel leaves rows of empty cells; they are not data (first cell: the
                    # cheap test)
                    if record and (record[0] or any(record)):
                        yield start, record
                return
            except csv.Error as exc:
                start, last = last + 1, reader.line_num
                yield start, BadRecord(_csv_reason(exc))
            except UnicodeDecodeError:
                raise _Undecodable from None

    def key_cells(pick: Callable[[Sequence[Any]], Any], size: int) -> Iterator[KeyCells]:
        """`records` for the first pass, in one loop without a generator step per row: the
        same records (empty rows and bad records left out, reading resumed after a bad
        one), only the picked cells kept."""
        last = reader.line_num
        cells: list[Any] = []
        lines: list[int] = []
        while True:
            try:
                for record in reader:
                    if record and (record[0] or any(record)):
                        try:
                            cells.append(pick(record))
                        except IndexError:  # a short row: the second pass rejects it
                            pass
                        else:
                            lines.append(last + 1)
                            if len(lines) == size:
                                yield cells, lines
                                cells, lines = [], []
                    last = reader.line_num
                break
            except csv.Error:
                last = reader.line_num  # the second pass rejects the record
            except UnicodeDecodeError:
                raise _Undecodable from None
        if lines:
            yield cells, lines

    return Source(header, records(), position, key_cells)


def _jsonl_source(text: io.TextIOWrapper, position: Callable[[], int]) -> Source:
    lines = _decoded(enumerate(text, 1))
    first: dict | None = None
    for number, line in lines:
        if line.strip():
            try:
                first = json.loads(line)
            except ValueError:
                raise CrmError(
                    f"第 {number} 行不是有效的 JSON：JSON lines 每行应是一个对象。"
                ) from None
            if not isinstance(first, dict):
                raise CrmError(f'第 {number} 行不是 JSON 对象：每行应形如 {{"code": ...}}。')
            first_number = number
            break
    if first is None:
        raise CrmError("文件是空的：JSON lines 文件每行应是一个对象。")
    headers = list(first)

    def records() -> Iterator[tuple[int, Sequence[Any] | BadRecord]]:
        yield first_number, [first.get(h) for h in headers]
        for number, line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                yield number, BadRecord("不是有效的 JSON")
                continue
            if not isinstance(record, dict):
                yield number, BadRecord("不是 JSON 对象")
                continue
            yield number, [record.get(h) for h in headers]

    return Source(headers, records(), position)


def _decoded(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    try:
        yield from lines
    except UnicodeDecodeError:
        raise _Undecodable from None


def _xlsx_errors() -> tuple[type[BaseException], ...]:
    """What openpyxl raises on a damaged file: the zip, the XML or a value inside it."""
    import zlib
    from xml.etree.ElementTree import ParseError
    from zipfile import BadZipFile

    return (
        BadZipFile,
        zlib.error,
        ParseError,
        EOFError,
        KeyError,
        IndexError,
        OSError,
        OverflowError,
        TypeError,
        ValueError,
    )


def _check_xlsx_size(path: Path, limits: Limits) -> None:
    """Refuse a workbook that unpacks to more than the limit, before openpyxl unpacks it
    (it keeps all shared strings in memory). The sizes the zip declares bound what it
    yields: Python's zipfile stops at the declared size and checks the CRC."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CrmError(
            f"无法读取 {path.name}：不是有效的 XLSX 文件（请用 Excel 另存为 .xlsx）。"
        ) from None
    if unpacked > limits.xlsx_max_mb * 1_000_000:
        raise CrmError(
            f"{path.name} 解压后有 {unpacked / 1_000_000:,.0f} MB，超过导入上限 "
            f"{limits.xlsx_max_mb} MB（设置 {XLSX_MAX_MB_KEY}）：请拆分文件或改用 CSV。"
        )


_DIMENSION = re.compile(
    rb"<(?:\w+:)?dimension\s+ref=\"([A-Z]{1,3}[0-9]{1,7}(?::[A-Z]{1,3}[0-9]{1,7})?)\""
)
_OPENING = threading.Lock()


def _load_workbook(path: Path):
    """openpyxl's read-only workbook, but a sheet's size is read from the head of its XML
    only: openpyxl parses the whole sheet at opening when the sheet has no <dimension>
    element (as a forged or hand-made file may not), which took half a minute for 134 MB.
    The size only sizes the progress bar here; rows are read up to the header's width."""
    import openpyxl
    from openpyxl.reader import excel
    from openpyxl.utils.cell import range_boundaries
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    class HeadSized(ReadOnlyWorksheet):
        def _get_size(self) -> None:
            with self._get_source() as source:
                found = _DIMENSION.search(source.read(1 << 16))
            if found is not None:
                bounds = range_boundaries(found.group(1).decode())
                self._min_column, self._min_row, self._max_column, self._max_row = bounds

    # Swapped only while this workbook opens, under a lock: other users of openpyxl in the
    # process keep its own class.
    with _OPENING:
        excel.ReadOnlyWorksheet = HeadSized
        try:
            return openpyxl.load_workbook(path, read_only=True, data_only=True)
        finally:
            excel.ReadOnlyWorksheet = ReadOnlyWorksheet


@contextmanager
def _xlsx_source(path: Path, limits: Limits) -> Iterator[Source]:
    _check_xlsx_size(path, limits)
    errors = _xlsx_errors()
    damaged = f"无法读取 {path.name}：XLSX 文件已损坏（请用 Excel 打开后另存为 .xlsx）。"
    try:
        book = _load_workbook(path)
    except errors:
        raise CrmError(
            f"无法读取 {path.name}：不是有效的 XLSX 文件（请用 Excel 另存为 .xlsx）。"
        ) from None
    try:
        try:
            sheet = book.worksheets[0]
            header = next(
                sheet.iter_rows(max_row=1, max_col=XLSX_MAX_COLUMNS, values_only=True), None
            )
        except errors:
            raise CrmError(damaged) from None
        if header is None:
            raise CrmError("工作表是空的：第 1 行应为列名。")
        headers = ["" if h is None else str(h) for h in header]
        while headers and not headers[-1]:
            headers.pop()
        if not headers:
            raise CrmError("工作表是空的：第 1 行应为列名。")
        size = path.stat().st_size
        total = max(sheet.max_row or 1, 1)
        done = [1]
        last_row = limits.xlsx_max_rows + 1  # the header row is not data

        def records() -> Iterator[tuple[int, Sequence[Any]]]:
            # Only the header's columns are read: a cell far to the right belongs to no column.
            rows = sheet.iter_rows(min_row=2, max_col=len(headers), values_only=True)
            number = 1
            try:
                for number, values in enumerate(rows, 2):
                    if number > last_row:
                        break
                    done[0] = number
                    if any(v is not None and v != "" for v in values):
                        yield number, values
                else:
                    return
            except errors:
                raise CrmError(
                    f"无法读取 {path.name} 第 {number + 1} 行：XLSX 文件已损坏"
                    "（请用 Excel 打开后另存为 .xlsx）。"
                ) from None
            raise CrmError(
                f"{path.name} 超过 {limits.xlsx_max_rows:,} 行（设置 {XLSX_MAX_ROWS_KEY}）："
                "请拆分文件或改用 CSV。"
            )

        # openpyxl hides the byte offset; the row count gives a good enough estimate.
        yield Source(headers, records(), lambda: min(size, size * done[0] // total))
    finally:
        book.close()


# ---------------------------------------------------------------------------------------------
# One import run


class Row:
    __slots__ = ("key", "line", "target", "values")

    def __init__(self, line: int, values: dict[str, Any], key: str):
        self.line = line
        self.values = values
        self.key = key
        self.target: dict[str, Any] = {}


class _Rejects:
    """The reject file, opened on the first bad row (CSV, UTF-8 with BOM for Excel)."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = None
        self._writer = None

    def write(self, rejects: list[tuple[int, str, str]]) -> None:
        if not rejects:
            return
        if self._writer is None:
            make_folder(self.path.parent)
            self._handle = self.path.open("w", encoding="utf-8-sig", newline="")
            # The reasons quote the bad cells: neutralised like every CSV we write.
            self._writer = csv_writer(self._handle)
            self._writer.writerow(REJECT_HEADER)
        rejects.sort(key=lambda item: item[0])
        self._writer.writerows(rejects)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class BulkInsert:
    """One INSERT compiled once and run per chunk as a driver-level executemany.

    `connection.execute(insert(table), rows)` builds and type-processes every parameter in
    Python, which costs more than the insert itself. Here the chunk is turned column-wise and
    a column whose type needs a bind processor on this dialect is processed once per distinct
    value (a chunk's timestamps, booleans and codes repeat), with C-level loops elsewhere.
    """

    def __init__(self, conn: Connection, table: Table, names: Sequence[str], statement=None):
        dialect = conn.dialect
        if statement is None:
            statement = insert(table).values({name: bindparam(name) for name in names})
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        self.names = list(names)
        self.order = list(compiled.positiontup) if self.positional else list(names)
        self.pick = itemgetter(*self.order)
        self.processors = {}
        for index, name in enumerate(self.order):
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.processors[index] = process

    def execute_tuples(self, conn: Connection, rows: list[tuple]) -> None:
        """Rows as tuples in the order of `names`, for a table whose columns need no bind
        processing (the temporary key tables): no dict per row where the driver takes
        positions."""
        if not rows:
            return
        if self.positional and self.order == self.names:
            conn.exec_driver_sql(self.sql, rows)
        else:
            self.execute(conn, [dict(zip(self.names, row)) for row in rows])

    def execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        params = list(map(self.pick, rows))
        if self.processors:
            columns = list(zip(*params))
            for index, process in self.processors.items():
                done = {v: None if v is None else process(v) for v in set(columns[index])}
                columns[index] = map(done.__getitem__, columns[index])
            params = list(zip(*columns))
        if not self.positional:
            order = self.order
            params = [dict(zip(order, values)) for values in params]
        conn.exec_driver_sql(self.sql, params)


def _key_table(name: str, *extra: Column) -> Table:
    return Table(
        name,
        _TEMP,
        Column("key", String(200), primary_key=True),
        Column("line", Integer, nullable=False),
        *extra,
        prefixes=["TEMPORARY"],
        sqlite_with_rowid=False,  # one B-tree per table instead of a table plus its key index
    )


# Keys of this run, on the import's own connection: duplicates inside a file are found
# without holding every key in memory. The first pass counts every row's key in SEEN, with
# the line it first appears on.
_TEMP = MetaData()
_SEEN = _key_table("crm_import_seen", Column("times", Integer, nullable=False))
_CHUNK = _key_table("crm_import_chunk")
# "key IN (SELECT ...)" rather than a join: SQLite then walks the chunk and seeks the index
# of the other table instead of scanning it (no statistics on temporary tables).
_CHUNK_KEYS = select(_CHUNK.c.key).scalar_subquery()
_ANY_REPEATED = select(_SEEN.c.key).where(_SEEN.c.times > 1).limit(1)
_REPEATED_HERE = select(_SEEN.c.key, _SEEN.c.line).where(
    _SEEN.c.key.in_(_CHUNK_KEYS), _SEEN.c.times > 1
)


def _count_keys(dialect_name: str):
    """INSERT a key with its line, or count it once more if it is there (the first line
    stays): the same ON CONFLICT on SQLite and PostgreSQL."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    one = literal_column("1")  # in the SQL, not a parameter: only key and line are bound
    statement = dialect_insert(_SEEN).values(
        key=bindparam("key"), line=bindparam("line"), times=one
    )
    return statement.on_conflict_do_update(
        index_elements=[_SEEN.c.key], set_={"times": _SEEN.c.times + one}
    )


class Run:
    """State of one import: connection, header plan, counters and the chunk pipeline."""

    def __init__(self, session: Session, kind: str, result: ImportResult, rejects: _Rejects):
        self.session = session
        self.conn: Connection = session.connection()
        self.vault = session.info.get("vault")
        self.user = audit.current_user(session)
        self.result = result
        self.rejects_out = rejects
        self.pending: list[tuple[int, str, str]] = []
        self.handler: Handler = HANDLERS[kind](self)
        self.columns = compile_schema(SCHEMAS[kind])
        self.header_of: dict[str, str] = {}
        self.plan: list[tuple[int, str, Callable[[Any], Any]]] = []
        self.now = utcnow()
        self.detail = ""
        self.chunk_insert = BulkInsert(self.conn, _CHUNK, ("key", "line"))
        self.any_repeated = True  # until the first pass has counted the keys

    # -- headers ------------------------------------------------------------------------------
    def map_headers(self, headers: list[str]) -> None:
        index = header_index(self.columns)
        unknown = []
        for position, header in enumerate(headers):
            written = printable(header.replace("\ufeff", "").strip())
            if not written:
                continue
            name = index.get(header_key(written))
            if name is None:
                unknown.append(written)
            elif name in self.header_of:
                raise CrmError(
                    f"列“{self.header_of[name]}”和“{written}”都对应字段 {name}：请删去其中一列。"
                )
            else:
                self.header_of[name] = written
                self.plan.append((position, name, self.columns[name].convert))
        missing = [c for c in self.columns.values() if c.required and c.name not in self.header_of]
        if missing:
            names = "、".join(f"{c.zh[0]}（{c.name}）" for c in missing)
            raise CrmError(f"文件缺少必填列：{names}；请在第 1 行加上这些列名后重新导入。")
        if unknown:
            self.result.warnings.append(f"以下列不认识，已忽略：{'、'.join(unknown)}。")

    def column(self, name: str) -> str:
        """The header as written in the file, for the reject file."""
        return self.header_of.get(name) or self.columns[name].zh[0]

    # -- the first pass -----------------------------------------------------------------------
    def survey(self, source: Source) -> None:
        """Read the whole file once before anything is written: every key that converts is
        counted in the temporary table SEEN, with the line it first appears on. A row whose
        other cells are bad still counts: its key is taken, so a later row with that key must
        not land either. Reading to the end first also refuses a file that cannot be read
        (encoding, XLSX limits) before the first write."""
        by_name = {name: (position, convert) for position, name, convert in self.plan}
        key_fields = self.handler.key_fields
        positions = [by_name[name][0] for name in key_fields]
        converters = [by_name[name][1] for name in key_fields]
        key = self.handler.key
        count_keys = BulkInsert(
            self.conn, _SEEN, ("key", "line"), _count_keys(self.conn.dialect.name)
        )
        single = len(key_fields) == 1
        # One cell per record for one key field, else a tuple of them; a record too short
        # for them is left out (the second pass rejects it).
        pick = itemgetter(*positions)
        convert = converters[0]
        for cells, lines in source.key_batches(pick, CHUNK_SIZE):
            try:
                if single:  # the common case, kept tight: this pass reads every row
                    keys = list(zip(map(convert, cells), lines))
                else:
                    keys = [
                        (key(dict(zip(key_fields, map(call, converters, picked)))), line)
                        for picked, line in zip(cells, lines)
                    ]
            except ValueError:
                keys = self._survey_keys(cells, lines, single, converters)
            count_keys.execute_tuples(self.conn, keys)
        # Most files repeat no key: their chunks then need not look.
        self.any_repeated = self.conn.execute(_ANY_REPEATED).first() is not None

    def _survey_keys(
        self, cells: list[Any], lines: list[int], single: bool, converters: list[Callable]
    ) -> list[tuple[Any, int]]:
        """A batch's keys, one row at a time: some key cell does not convert, and its row is
        left out here (the second pass rejects it for that cell)."""
        key_fields, key = self.handler.key_fields, self.handler.key
        keys = []
        for picked, line in zip(cells, lines):
            try:
                if single:
                    keys.append((converters[0](picked), line))
                else:
                    values = dict(zip(key_fields, map(call, converters, picked)))
                    keys.append((key(values), line))
            except ValueError:
                continue
        return keys

    def reject(self, line: int, name: str | None, reason: str) -> None:
        self.pending.append((line, self.column(name) if name else "", reason))

    # -- the chunk pipeline -------------------------------------------------------------------
    def chunk(self, records: list[tuple[int, Sequence[Any] | BadRecord]]) -> None:
        self.now = utcnow()
        rows = self._convert(records)
        rows = self._drop_duplicates(rows)
        if rows:
            rows = self.handler.prepare(rows)
        if rows:
            self._write(rows)
        if self.pending:
            lines = {line for line, _, _ in self.pending}
            self.result.rejected += len(lines)
            self.rejects_out.write(self.pending)
            self.pending = []

    def _convert(self, records) -> list[Row]:
        names = [name for _, name, _ in self.plan]
        converters = [convert for _, _, convert in self.plan]
        positions = [position for position, _, _ in self.plan]
        width = max(positions) + 1
        pick = (
            itemgetter(*positions) if len(positions) > 1 else lambda cells: (cells[positions[0]],)
        )
        key = self.handler.key
        rows = []
        for line, cells in records:
            if cells.__class__ is BadRecord:
                self.reject(line, None, cells.reason)
                continue
            if len(cells) < width:
                cells = [*cells, *(None,) * (width - len(cells))]
            raw = pick(cells)
            try:
                # C-level loops over the columns; the slow loop below only names the bad cells.
                values = dict(zip(names, map(call, converters, raw)))
            except ValueError:
                self._reject_cells(line, names, converters, raw)
                continue
            rows.append(Row(line, values, key(values)))
        return rows

    def _reject_cells(self, line: int, names, converters, raw) -> None:
        for name, convert, cell in zip(names, converters, raw):
            try:
                convert(cell)
            except ValueError as exc:
                self.reject(line, name, str(exc))

    def _drop_duplicates(self, rows: list[Row]) -> list[Row]:
        """Reject every row whose key the file holds more than once (counted in SEEN by the
        first pass): which of them is right is for a person to say. The chunk's other keys
        go to the temporary table CHUNK for the look-ups of this chunk."""
        conn = self.conn
        conn.execute(_CHUNK.delete())
        # Keys twice in this chunk are counted twice in SEEN too; CHUNK takes each key once.
        lines = {row.key: row.line for row in reversed(rows)}
        if not lines:
            return rows
        self.chunk_insert.execute_tuples(conn, list(lines.items()))
        if not self.any_repeated:
            return rows
        repeated = dict(conn.execute(_REPEATED_HERE).all())
        if not repeated:
            return rows
        key_fields = self.handler.key_fields
        kept = []
        for row in rows:
            first = repeated.get(row.key)
            if first is None:
                kept.append(row)
            else:
                self._duplicate(row, key_fields, first)
        conn.execute(_CHUNK.delete().where(_CHUNK.c.key.in_(list(repeated))))
        return kept

    def _duplicate(self, row: Row, key_fields: tuple[str, ...], first_line: int) -> None:
        columns = "+".join(self.column(name) for name in key_fields)
        reason = (
            f"同一{columns}在文件中出现多次（首次在第 {first_line} 行）：这些行都不导入，"
            "请保留正确的一行后重新导入"
        )
        self.pending.append((row.line, columns, reason))

    def _write(self, rows: list[Row]) -> None:
        handler = self.handler
        stored = handler.preload(rows)
        inserts, inserted, updates, updated, entries = [], [], [], [], []
        for row in rows:
            old = stored.get(row.key)
            if old is None:
                inserts.append(handler.new_row(row))
                inserted.append(row)
                continue
            values, changes = handler.diff(old, row)
            if not values:
                self.result.unchanged += 1
                continue
            refusal = handler.refuse_change(old)
            if refusal is not None:
                self.reject(row.line, handler.key_fields[0], refusal)
                continue
            values["updated_at"] = self.now
            updates.append(handler.full_update(old, values))
            updated.append(row)
            entries.append(self.audit_entry("update", handler.table.name, old["id"], changes, row))
        if inserts:
            handler.inserter().execute(self.conn, inserts)
        if updates:
            self.conn.execute(handler.update_statement(), updates)
        if entries:
            self.conn.execute(insert(AuditEntry), entries)
        self.result.inserted += len(inserted)
        self.result.updated += len(updated)
        if inserted or updated:
            handler.after_write(inserted + updated)

    def audit_entry(self, action: str, entity: str, entity_id: Any, changes: dict, row: Row):
        return {
            "at": self.now,
            "actor": self.user.name,
            "role": self.user.role,
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id),
            "changes": changes,
            "detail": f"{self.detail}第 {row.line} 行",
        }

    def created(self, what: str, count: int) -> None:
        if count:
            self.result.created[what] = self.result.created.get(what, 0) + count

    # -- shared look-ups ----------------------------------------------------------------------
    def household_ids(self, codes: set[str]) -> dict[str, int]:
        if not codes:
            return {}
        table = Household.__table__
        query = select(table.c.code, table.c.id).where(table.c.code.in_(list(codes)))
        return dict(self.conn.execute(query).all())

    def project_ids(self, names: set[str]) -> dict[str, int]:
        """Project name -> id, creating the projects not yet known."""
        found = self._ensure(Project.__table__, ("name",), [(name,) for name in names])
        return {key[0]: ident for key, ident in found.items()}

    def unit_ids(
        self, wanted: dict[tuple[str, str, str], Decimal | None], create: bool
    ) -> dict[tuple[str, str, str], int]:
        """(project, building, unit) -> unit id; created as needed when `create` (with the
        floor area given), else only the existing ones."""
        if not wanted:
            return {}
        project_names = {p for p, _, _ in wanted}
        if create:
            projects = self.project_ids(project_names)
        else:
            table = Project.__table__
            query = select(table.c.name, table.c.id).where(table.c.name.in_(list(project_names)))
            projects = dict(self.conn.execute(query).all())
        buildings = self._ensure(
            Building.__table__,
            ("project_id", "name"),
            list({(projects[p], b) for p, b, _ in wanted if p in projects}),
            create,
        )
        building_of = {(p, b): buildings.get((projects.get(p), b)) for p, b, _ in wanted}
        areas = {
            (building_of[(p, b)], u): area
            for (p, b, u), area in wanted.items()
            if building_of[(p, b)] is not None
        }
        units = self._ensure(
            Unit.__table__,
            ("building_id", "code"),
            list(areas),
            create,
            lambda key: {"floor_area": areas[key]},
        )
        found = {}
        for p, b, u in wanted:
            unit = units.get((building_of[(p, b)], u))
            if unit is not None:
                found[(p, b, u)] = unit
        return found

    def _ensure(
        self,
        table: Table,
        key_names: tuple[str, ...],
        keys: list[tuple],
        create: bool = True,
        extra: Callable[[tuple], dict] | None = None,
    ) -> dict[tuple, int]:
        """Key tuple -> id for the rows of `table` named by `key_names`; the missing ones are
        inserted first when `create`."""
        if not keys:
            return {}
        columns = [table.c[name] for name in key_names]
        single = len(columns) == 1
        match = columns[0].in_([k[0] for k in keys]) if single else tuple_(*columns).in_(keys)
        query = select(*columns, table.c.id).where(match)

        def existing() -> dict[tuple, int]:
            return {tuple(key): ident for *key, ident in self.conn.execute(query)}

        found = existing()
        missing = [key for key in keys if key not in found]
        if missing and create:
            stamp = {"created_at": self.now, "updated_at": self.now}
            rows = [
                dict(zip(key_names, key)) | (extra(key) if extra else {}) | stamp for key in missing
            ]
            self.conn.execute(insert(table), rows)
            self.created(table.name, len(missing))
            found = existing()
        return found


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------
# The four kinds


class Handler:
    """What differs between kinds: the key, how references resolve, defaults and comparison."""

    table: Table
    key_fields: tuple[str, ...]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, run: Run):
        self.run = run
        self.blank = (
            dict.fromkeys(c.name for c in self.table.c if c.name not in ("id",)) | self.defaults
        )
        self.default_items = tuple(self.defaults.items())
        # What an update writes: every column but the creation time (see full_update).
        self.updated = [name for name in self.blank if name != "created_at"]
        self._update = None
        self._insert: BulkInsert | None = None

    def key(self, values: dict[str, Any]) -> str:
        return values[self.key_fields[0]]

    def prepare(self, rows: list[Row]) -> list[Row]:
        """Resolve references, fill `row.target` (column -> new value, None = keep), reject."""
        raise NotImplementedError

    def preload(self, rows: list[Row]) -> dict[str, Any]:
        """Stored rows for this chunk's keys, by key: one query."""
        column = self.table.c[self.key_fields[0]]
        query = select(self.table).where(column.in_(_CHUNK_KEYS))
        return {stored[column.name]: stored for stored in self.run.conn.execute(query).mappings()}

    def new_row(self, row: Row) -> dict[str, Any]:
        values = self.blank | row.target
        for name, default in self.default_items:
            if values[name] is None:
                values[name] = default
        values["created_at"] = values["updated_at"] = self.run.now
        return values

    def diff(self, stored, row: Row) -> tuple[dict[str, Any], dict[str, list]]:
        values, changes = {}, {}
        for name, new in row.target.items():
            if new is not None and stored[name] != new:
                values[name] = new
                changes[name] = [_plain(stored[name]), _plain(new)]
        return values, changes

    def refuse_change(self, stored) -> str | None:
        """Why a stored row may not be changed by an import (None: it may)."""
        return None

    def full_update(self, stored, values: dict[str, Any]) -> dict[str, Any]:
        """executemany needs one shape: every column, stored values where nothing changed."""
        row = {f"new_{name}": stored[name] for name in self.updated}
        row.update({f"new_{name}": value for name, value in values.items()})
        row["old_id"] = stored["id"]
        return row

    def inserter(self) -> BulkInsert:
        if self._insert is None:
            self._insert = BulkInsert(self.run.conn, self.table, list(self.blank))
        return self._insert

    def update_statement(self):
        if self._update is None:
            self._update = (
                update(self.table)
                .where(self.table.c.id == bindparam("old_id"))
                .values({name: bindparam(f"new_{name}") for name in self.updated})
            )
        return self._update

    def after_write(self, rows: list[Row]) -> None:
        """Follow-up writes for rows inserted or updated in this chunk."""

    # helpers for the kinds
    def reject_unknown_households(self, rows: list[Row], *fields: str) -> tuple[list[Row], dict]:
        codes = {row.values[f] for row in rows for f in fields if row.values.get(f)}
        ids = self.run.household_ids(codes)
        kept = []
        for row in rows:
            bad = [f for f in fields if row.values.get(f) and row.values[f] not in ids]
            for f in bad:
                what = "推荐人户号" if f == "referrer_code" else "户号"
                self.run.reject(row.line, f, f"{what}“{row.values[f]}”不存在：请先导入客户家庭")
            if not bad:
                kept.append(row)
        return kept, ids

    def units_for(self, rows: list[Row], create: bool) -> tuple[list[Row], dict]:
        wanted: dict[tuple[str, str, str], Decimal | None] = {}
        kept = []
        for row in rows:
            values = row.values
            project, building, unit = (
                values.get("project"),
                values.get("building"),
                values.get("unit"),
            )
            if unit and not (project and building):
                self.run.reject(row.line, "unit", "填写房号时须同时填写项目和楼栋")
            elif building and not project:
                self.run.reject(row.line, "building", "填写楼栋时须同时填写项目")
            else:
                if unit:
                    wanted.setdefault((project, building, unit), values.get("floor_area"))
                kept.append(row)
        return kept, self.run.unit_ids(wanted, create)


class Households(Handler):
    table = Household.__table__
    key_fields = ("code",)
    defaults: ClassVar[dict[str, Any]] = {
        "status": "prospective",
        "member_tier": "none",
        "consent_contact": True,
        "consent_marketing": False,
    }

    def prepare(self, rows: list[Row]) -> list[Row]:
        names = {row.values["project"] for row in rows if row.values.get("project")}
        projects = self.run.project_ids(names) if names else {}
        for row in rows:
            target = row.values.copy()
            project = target.pop("project", None)
            if project is not None:
                target["project_id"] = projects[project]
            row.target = target
        return rows


class Members(Handler):
    table = Member.__table__
    key_fields = ("household_code", "name")
    defaults: ClassVar[dict[str, Any]] = {"role": "owner"}
    PERSONAL = ("phone", "alt_phone", "id_number")

    def key(self, values: dict[str, Any]) -> str:
        return f"{values['household_code']}\x1f{values['name']}"

    def prepare(self, rows: list[Row]) -> list[Row]:
        rows, ids = self.reject_unknown_households(rows, "household_code")
        for row in rows:
            target = {k: v for k, v in row.values.items() if k != "household_code"}
            target["household_id"] = ids[row.values["household_code"]]
            row.target = target
        return rows

    def __init__(self, run: Run):
        super().__init__(run)
        # On PostgreSQL most logins may not read members' hashes: the database compares the
        # new numbers with the stored ones and writes those that differ (migration 0006).
        self.reads_sealed = reads_sealed(run.session)
        self.resealed: dict[int, list[str]] = {}
        if not self.reads_sealed:  # those the database wrote already, and we may not read
            self.updated = [name for name in self.updated if name not in Member.SEALED]

    def preload(self, rows: list[Row]) -> dict[str, Any]:
        members, households = self.table, Household.__table__
        pairs = [(row.target["household_id"], row.target["name"]) for row in rows]
        columns = [c for c in members.c if self.reads_sealed or c.name not in Member.SEALED]
        query = (
            select(*columns, households.c.code.label("household_code"))
            .join(households, households.c.id == members.c.household_id)
            .where(tuple_(members.c.household_id, members.c.name).in_(pairs))
        )
        stored = {
            f"{found['household_code']}\x1f{found['name']}": found
            for found in self.run.conn.execute(query).mappings()
        }
        if not self.reads_sealed:
            self.resealed = self._reseal_in_database(rows, stored)
        return stored

    def _reseal_in_database(self, rows: list[Row], stored) -> dict[int, list[str]]:
        """Write the new personal data of stored members where it differs; member id ->
        which of phone, alt_phone and id_number changed."""
        given = []
        for row in rows:
            old = stored.get(row.key)
            personal = {k: row.target.get(k) for k in self.PERSONAL}
            if old is None or not any(personal.values()):
                continue
            sealed = seal_member_fields(self.run.vault, **personal)
            given.append({"id": old["id"]} | {k: v for k, v in sealed.items() if v is not None})
        if not given:
            return {}
        found = self.run.conn.execute(
            text("SELECT member_id, changed FROM crm_update_member_seals(CAST(:rows AS jsonb))"),
            {"rows": json.dumps(given)},
        )
        return {member_id: list(changed) for member_id, changed in found}

    def new_row(self, row: Row) -> dict[str, Any]:
        target = row.target
        plain = {k: v for k, v in target.items() if k not in self.PERSONAL}
        values = super().new_row(_with_target(row, plain))
        values.update(
            seal_member_fields(
                self.run.vault,
                phone=target.get("phone"),
                alt_phone=target.get("alt_phone"),
                id_number=target.get("id_number"),
            )
        )
        return values

    def diff(self, stored, row: Row) -> tuple[dict[str, Any], dict[str, list]]:
        vault = self.run.vault
        target = row.target
        plain = _with_target(row, {k: v for k, v in target.items() if k not in self.PERSONAL})
        values, changes = super().diff(stored, plain)
        phone, alt, id_number = (target.get(k) for k in self.PERSONAL)
        if not self.reads_sealed:
            changed = self.resealed.get(stored["id"], [])
            for name in changed:
                changes[name] = ["***", "***（已更改）"]
            sealed = seal_member_fields(vault, phone=phone, alt_phone=alt, id_number=id_number)
            # Already written by the database; the visible ones are named again so the row
            # counts as updated and the update below writes them, not the stored ones, back.
            for name, shown in (
                ("phone", ("phone_masked", "phone_tail")),
                ("alt_phone", ("alt_phone_masked", "alt_phone_tail")),
                ("id_number", ("id_number_masked",)),
            ):
                if name in changed:
                    values.update({column: sealed[column] for column in shown})
            return values, changes
        if phone and vault.lookup_hash(phone) != stored["phone_hash"]:
            sealed = seal_member_fields(vault, phone=phone)
            values.update(
                {k: sealed[k] for k in ("phone_enc", "phone_hash", "phone_tail", "phone_masked")}
            )
            changes["phone"] = ["***", "***（已更改）"]
        if alt and vault.lookup_hash(alt) != stored["alt_phone_hash"]:
            sealed = seal_member_fields(vault, alt_phone=alt)
            values.update(
                {
                    k: sealed[k]
                    for k in (
                        "alt_phone_enc",
                        "alt_phone_hash",
                        "alt_phone_tail",
                        "alt_phone_masked",
                    )
                }
            )
            changes["alt_phone"] = ["***", "***（已更改）"]
        if id_number and vault.lookup_hash(id_number) != stored["id_number_hash"]:
            sealed = seal_member_fields(vault, id_number=id_number)
            values.update(
                {k: sealed[k] for k in ("id_number_enc", "id_number_hash", "id_number_masked")}
            )
            changes["id_number"] = ["***", "***（已更改）"]
        return values, changes


def _with_target(row: Row, target: dict[str, Any]) -> Row:
    copy = Row(row.line, row.values, row.key)
    copy.target = target
    return copy


class Purchases(Handler):
    table = Purchase.__table__
    key_fields = ("contract_no",)
    defaults: ClassVar[dict[str, Any]] = {"promotions_attended": 0}

    def prepare(self, rows: list[Row]) -> list[Row]:
        rows, ids = self.reject_unknown_households(rows, "household_code", "referrer_code")
        kept = []
        for row in rows:
            referrer = row.values.get("referrer_code")
            if referrer and referrer == row.values["household_code"]:
                self.run.reject(row.line, "referrer_code", "推荐人不能是购房客户本身")
            else:
                kept.append(row)
        rows, units = self.units_for(kept, create=True)
        for row in rows:
            values = row.values
            target = {
                name: values.get(name)
                for name in (
                    "contract_no",
                    "purchase_date",
                    "floor_area",
                    "amount",
                    "channel",
                    "promotions_attended",
                    "handover_date",
                )
            }
            target["household_id"] = ids[values["household_code"]]
            if values.get("referrer_code"):
                target["referrer_household_id"] = ids[values["referrer_code"]]
            if values.get("unit"):
                target["unit_id"] = units[(values["project"], values["building"], values["unit"])]
            row.target = target
        return rows

    def after_write(self, rows: list[Row]) -> None:
        run, conn = self.run, self.run.conn
        referred = [row for row in rows if row.target.get("referrer_household_id")]
        if referred:
            purchases = self.table
            query = select(purchases.c.contract_no, purchases.c.id).where(
                purchases.c.contract_no.in_([row.key for row in referred])
            )
            purchase_ids = dict(conn.execute(query).all())
            referrals = Referral.__table__
            pairs = {
                (row.target["referrer_household_id"], row.target["household_id"]): row
                for row in referred
            }
            query = select(referrals.c.referrer_household_id, referrals.c.referred_household_id)
            query = query.where(
                tuple_(referrals.c.referrer_household_id, referrals.c.referred_household_id).in_(
                    list(pairs)
                )
            )
            known = {tuple(pair) for pair in conn.execute(query)}
            new = [
                {
                    "referrer_household_id": referrer,
                    "referred_household_id": referred_id,
                    "purchase_id": purchase_ids[row.key],
                    "referred_on": row.values["purchase_date"],
                    "created_at": run.now,
                    "updated_at": run.now,
                }
                for (referrer, referred_id), row in pairs.items()
                if (referrer, referred_id) not in known
            ]
            if new:
                conn.execute(insert(referrals), new)
                run.created("referrals", len(new))
        self._mark_existing(rows)

    def _mark_existing(self, rows: list[Row]) -> None:
        """A purchase makes its household an owner (业主); each change is audited."""
        run, conn = self.run, self.run.conn
        households = Household.__table__
        by_household = {row.target["household_id"]: row for row in rows}
        query = select(households.c.id, households.c.status).where(
            households.c.id.in_(list(by_household)), households.c.status != "existing"
        )
        changed = conn.execute(query).all()
        if not changed:
            return
        conn.execute(
            update(households)
            .where(households.c.id.in_([ident for ident, _ in changed]))
            .values(status="existing", updated_at=run.now)
        )
        conn.execute(
            insert(AuditEntry),
            [
                run.audit_entry(
                    "update",
                    "households",
                    ident,
                    {"status": [status, "existing"]},
                    by_household[ident],
                )
                for ident, status in changed
            ],
        )
        run.created("status", len(changed))


class Services(Handler):
    table = ServiceRecord.__table__
    key_fields = ("record_no",)
    defaults: ClassVar[dict[str, Any]] = {"status": "open"}

    def refuse_change(self, stored) -> str | None:
        # A register entry a plugin keeps (a ticket) changes only as that plugin handles it;
        # re-importing an unchanged export of it is fine.
        if stored["managed_by"] is None:
            return None
        return (
            f"登记号“{stored['record_no']}”由插件 {stored['managed_by']} 在系统中办理，"
            "导入不能修改它"
        )

    def prepare(self, rows: list[Row]) -> list[Row]:
        rows, ids = self.reject_unknown_households(rows, "household_code")
        rows, units = self.units_for(rows, create=False)
        kept = []
        for row in rows:
            values = row.values
            unit = None
            if values.get("unit"):
                unit = units.get((values["project"], values["building"], values["unit"]))
                if unit is None:
                    run_line = f"{values['project']} {values['building']} 栋 {values['unit']}"
                    self.run.reject(row.line, "unit", f"房号不存在：{run_line}")
                    continue
            closed = values.get("closed_at")
            if closed is not None and closed < values["opened_at"]:
                self.run.reject(row.line, "closed_at", "关闭时间早于登记时间")
                continue
            target = {
                name: values.get(name)
                for name in (
                    "record_no",
                    "kind",
                    "channel",
                    "status",
                    "opened_at",
                    "closed_at",
                    "summary",
                    "result",
                )
            }
            if target["status"] is None and closed is not None:
                target["status"] = "closed"
            target["household_id"] = ids[values["household_code"]]
            target["unit_id"] = unit
            row.target = target
            kept.append(row)
        return kept


HANDLERS: dict[str, type[Handler]] = {
    "households": Households,
    "members": Members,
    "purchases": Purchases,
    "service": Services,
}


# ---------------------------------------------------------------------------------------------
# The entry point


def _lock_imports(session: Session) -> None:
    """Make this import wait for any other one to commit. SQLite: take the write lock now
    (BEGIN IMMEDIATE), so the wait honours the busy timeout; a transaction that had read
    first would get "database is locked" at once when it came to write. PostgreSQL: an
    advisory lock, so the second import finds the first one's rows instead of inserting them
    again."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(IMPORT_LOCK)))
    else:
        begin_write(session)


@contextmanager
def _collector_paused(collect: bool) -> Iterator[None]:
    """Pause Python's cycle collector while a chunk is built: the chunk's thousands of live
    rows would trigger a collection every few hundred allocations, about a third of the import
    time. A young-generation collection every few chunks still reclaims any cycles, so memory
    stays flat."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collect:
            gc.collect(1)
        if enabled:
            gc.enable()


def _batches(iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while batch := list(islice(iterator, size)):
        yield batch


def import_file(
    session: Session,
    kind: str,
    path: str | Path,
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    rejects: str | Path | None = None,
    strict: bool = False,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one file of `kind` (households, members, purchases, service) in the caller's
    transaction. Returns the counts; raises ImportRejected in strict mode when any row is bad
    (the caller must roll back, as `crm.core.db.transaction` does). `progress`, if given, is
    called with the number of bytes read since its last call."""
    audit.current_user(session).require("import", "批量导入数据")
    if kind not in HANDLERS:
        raise CrmError(f"不认识的导入类型“{kind}”：可用 {'、'.join(HANDLERS)}。")
    path = Path(path)
    if not path.is_file():
        raise CrmError(f"找不到文件 {path}：请检查路径。")
    fmt = detect_format(path, fmt)
    rejects_path = Path(rejects) if rejects else Path(f"{path}.rejects.csv")
    sha256, utf8 = scan_file(path, text=fmt != "xlsx")
    encoding = encoding or detect_encoding(path, utf8)
    limits = import_limits(session)
    result = ImportResult(kind=kind, path=path, sha256=sha256)
    with open_source(path, fmt, encoding, limits) as source:
        out = _Rejects(rejects_path)
        run = Run(session, kind, result, out)
        run.detail = f"导入 {path.name} "
        run.map_headers(source.headers)
        # Before the first statement that reads or writes: imports wait for each other here.
        _lock_imports(session)
        conn = run.conn
        _TEMP.drop_all(conn)
        _TEMP.create_all(conn)
        run.survey(source)
    with open_source(path, fmt, encoding, limits) as source:
        done = 0
        try:
            batches = _batches(source.records, chunk_size)
            for number in count(1):
                with _collector_paused(collect=number % 10 == 0):
                    batch = next(batches, None)
                    if batch is None:
                        break
                    run.chunk(batch)
                if progress is not None:
                    position = source.position()
                    progress(position - done)
                    done = position
        finally:
            out.close()
        _TEMP.drop_all(conn)
    if result.rejected:
        result.rejects_path = rejects_path
    elif rejects is None and rejects_path.exists():
        rejects_path.unlink()  # left by an earlier run of this file; it would mislead
    created = "，".join(
        f"{_CREATED_LABELS[name]} {count}" for name, count in result.created.items()
    )
    audit.record(
        session,
        "import",
        run.handler.table.name,
        detail=(
            f"文件 {path.name}（sha256 {result.sha256}）：新增 {result.inserted}，"
            f"更新 {result.updated}，未变 {result.unchanged}，拒绝 {result.rejected}"
            + (f"；新建 {created}" if created else "")
        ),
    )
    if strict and result.rejected:
        raise ImportRejected(result)
    return result
