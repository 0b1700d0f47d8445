"""Property-based tests of the import (hypothesis): whatever a file holds, every row is
imported or rejected with its line, column and a reason, and nothing raises.

The example counts are kept small for the suite; `bench/import_fuzz.py` runs 50,000 rows."""

from __future__ import annotations

import csv
import io
import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Integer, Numeric, String, select

from crm.core.db import transaction
from crm.core.importing import import_file
from crm.core.models import Household, Member, Purchase, ServiceRecord
from crm.core.schemas import SCHEMAS, compile_schema

# What no stored text may hold (crm.core.schemas refuses it; tab and line breaks are allowed
# in multi-line notes only).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31m红",
    "\t",
    "\r\n",
    '"',
    '""',
    'a"b',
    "1e30",
    "-1",
    "9" * 50,
    "1e999999999",
    "NaN",
    '=HYPERLINK("http://x")',
    "Ｈ１",
    "张伟",
    "\u3000张伟\u3000",
    "\ufeff",
    "x" * 40,
    "x" * 41,
    "长" * 100,
    "长" * 101,
    "注" * 10_001,
    "\x9b31m",
    "\x7f",
    "𠀀𠀁",
]
# Any character but surrogates (no encoding can write them to a file), control characters
# weighted in.
CHARS = st.one_of(
    st.characters(exclude_categories=("Cs",)),
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
)
CELL = st.one_of(st.text(CHARS, max_size=12), st.sampled_from(NASTY))
# A few codes, so that keys repeat within a file and across examples.
CODE = st.one_of(st.sampled_from(["H1", "H2", " H3 ", "Ｈ4", "H5", "h1"]), CELL)
AGE = st.one_of(st.integers(-5, 200).map(str), st.sampled_from(["", "30", "１２", "3.0"]), CELL)
ROW = st.tuples(CODE, CELL, AGE, CELL)


def _records(rows: list[tuple], terminator: str) -> tuple[str, list[tuple[int, tuple]]]:
    """The CSV text of `rows` after a header, and (start line, row) of each row that is data
    (the reader skips rows of empty cells); lines count as the reader counts them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(["code", "name", "age", "note"])
    line, records = 2, []
    for row in rows:
        piece = io.StringIO()
        # The writer quotes a cell holding CR or LF only when they are in its terminator.
        csv.writer(piece, lineterminator="\r\n").writerow(row)
        text = piece.getvalue()[:-2] + terminator
        if any(row):
            records.append((line, row))
        line += len(io.StringIO(text, newline="").readlines())
        out.write(text)
    return out.getvalue(), records


def _code(text: str) -> str:
    text = text.strip()
    return text if text.isascii() else unicodedata.normalize("NFKC", text).strip()


def _must_reject(row: tuple, repeated: set[str]) -> bool:
    code, name, _age, note = (cell.strip() for cell in row)
    return (
        not code
        or not name
        or any(CONTROL.search(cell) for cell in (code, name, row[2].strip()))
        or bool(NOTE_CONTROL.search(note))
        or (code.isascii() and code.isprintable() and code in repeated)
    )


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    rows=st.lists(ROW, max_size=25),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
    terminator=st.sampled_from(["\r\n", "\n"]),
    truncated=st.booleans(),
)
def test_every_row_is_imported_or_rejected_with_line_column_and_reason(
    app, tmp_path, rows, encoding, terminator, truncated
):
    text, records = _records(rows, terminator)
    tail = None
    if truncated:  # a last line cut inside a quoted cell
        tail = 1 + len(io.StringIO(text, newline="").readlines())
        text += 'H9,"被截断'
    path = tmp_path / "fuzz.csv"
    path.write_bytes(text.encode(encoding))
    rejects_path = tmp_path / "fuzz.rejects.csv"

    with app.session() as session, transaction(session):
        result = import_file(session, "households", path, rejects=rejects_path)

    total = len(records) + (tail is not None)
    assert result.inserted + result.updated + result.unchanged + result.rejected == total
    rejected: dict[int, list[tuple[str, str]]] = {}
    if result.rejected:
        with open(rejects_path, encoding="utf-8-sig", newline="") as handle:
            for line, column, reason in list(csv.reader(handle))[1:]:
                rejected.setdefault(int(line), []).append((column, reason))
    assert len(rejected) == result.rejected
    starts = {line for line, _ in records}
    for line, reasons in rejected.items():
        assert line in starts or line == tail
        for column, reason in reasons:
            assert reason and not reason.isascii()  # a Chinese sentence, not Python's
            # Only a line that cannot be read as CSV has no column.
            assert column in ("code", "name", "age", "note") or (column == "" and line == tail)
    if tail is not None:
        assert tail in rejected

    codes = [_code(row[0]) for _, row in records]
    repeated = {code for code in codes if codes.count(code) > 1}
    with app.session() as session:
        stored = {h.code: h for h in session.scalars(select(Household))}
    for line, row in records:
        if _must_reject(row, repeated):
            assert line in rejected, (line, row)
        if line not in rejected:
            household = stored[_code(row[0])]
            assert household.name == row[1].strip()
    for household in stored.values():
        for value in (household.code, household.name, household.project_id):
            assert not (isinstance(value, str) and CONTROL.search(value))
        assert not (household.note and NOTE_CONTROL.search(household.note))


TABLES = {
    "households": Household,
    "members": Member,
    "purchases": Purchase,
    "service": ServiceRecord,
}
COLUMNS = [(kind, column) for kind in SCHEMAS for column in compile_schema(SCHEMAS[kind]).values()]
ANY_VALUE = st.one_of(
    CELL,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.dates().map(str),
    st.datetimes(),
    st.text(st.characters(), max_size=20),  # lone surrogates too, as JSON may carry them
    st.lists(st.text(max_size=3), max_size=2),
)


@settings(max_examples=300, deadline=None, database=None)
@given(column=st.sampled_from(COLUMNS), value=ANY_VALUE)
def test_every_cell_converts_to_what_its_column_holds_or_gives_a_reason(column, value):
    kind, column = column
    try:
        converted = column.convert(value)
    except ValueError as exc:
        assert str(exc) and not str(exc).isascii()
        return
    table = TABLES[kind].__table__
    if converted is None or column.name not in table.c:
        return
    kind_of = table.c[column.name].type
    if isinstance(converted, str):
        assert not NOTE_CONTROL.search(converted)
        if isinstance(kind_of, String) and kind_of.length:
            assert len(converted) <= kind_of.length
    if isinstance(kind_of, Numeric):
        assert abs(converted) < 10 ** (kind_of.precision - kind_of.scale)
    if isinstance(kind_of, Integer) and not isinstance(converted, bool):
        assert -(2**31) <= converted < 2**31


@settings(max_examples=500, deadline=None, database=None)
@given(
    column=st.sampled_from(COLUMNS),
    value=st.one_of(
        ANY_VALUE,
        st.sampled_from(NASTY),
        st.text(st.sampled_from("Hh1１甲 \u3000'=\t\n\x00\x1b"), max_size=120),
    ),
)
def test_every_fast_converter_agrees_with_schema_load(column, value):
    """The compiled converters' shortcuts accept and refuse exactly what marshmallow does."""
    from marshmallow import ValidationError

    kind, column = column
    field = SCHEMAS[kind]().fields[column.name]
    try:
        expected = ("ok", field.deserialize(value))
    except ValidationError as exc:
        expected = ("error", "；".join(map(str, exc.messages)))
    except (TypeError, AttributeError):  # marshmallow on a list: not a cell a file can hold
        return
    try:
        got = ("ok", column.convert(value))
    except ValueError as exc:
        got = ("error", str(exc))
    assert got == expected
