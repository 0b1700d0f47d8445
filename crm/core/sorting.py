"""Room and building numbers in the order people count them: 202 before 1804, 2栋 before 10栋,
12-2B before 12-10A; as text they sort 1804 before 202.

`natural_order(column)` gives ORDER BY terms that work the same on SQLite and PostgreSQL: the
number the value starts with, then the number after its first "-", then the text itself (so
equal numbers still sort one way). `natural_key(text)` is the same order in Python.
"""

from __future__ import annotations

import re

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

_LEADING = re.compile(r"\d{1,18}")
_AFTER_DASH = re.compile(r"[^-]*-(\d{1,18})")


class _LeadingNumber(FunctionElement):
    """The whole number a text starts with (0 when it starts with none)."""

    type = BigInteger()
    inherit_cache = True
    name = "leading_number"


class _NumberAfterDash(FunctionElement):
    """The whole number right after the first "-" of a text (0 when there is none)."""

    type = BigInteger()
    inherit_cache = True
    name = "number_after_dash"


@compiles(_LeadingNumber, "postgresql")
def _leading_pg(element, compiler, **kw):
    text = compiler.process(element.clauses, **kw)
    return f"COALESCE(CAST(substring({text} from '^[0-9]{{1,18}}') AS BIGINT), 0)"


@compiles(_NumberAfterDash, "postgresql")
def _after_dash_pg(element, compiler, **kw):
    text = compiler.process(element.clauses, **kw)
    return f"COALESCE(CAST(substring({text} from '^[^-]*-([0-9]{{1,18}})') AS BIGINT), 0)"


@compiles(_LeadingNumber)
def _leading_sqlite(element, compiler, **kw):
    # SQLite's CAST reads the longest leading integer (a sign too: codes have none) and gives
    # 0 without one; a leading space or "+" would count there, so those are guarded.
    text = compiler.process(element.clauses, **kw)
    return (
        f"(CASE WHEN substr({text}, 1, 1) BETWEEN '0' AND '9' "
        f"THEN CAST(substr({text}, 1, 18) AS INTEGER) ELSE 0 END)"
    )


@compiles(_NumberAfterDash)
def _after_dash_sqlite(element, compiler, **kw):
    text = compiler.process(element.clauses, **kw)
    rest = f"substr({text}, instr({text}, '-') + 1)"
    return (
        f"(CASE WHEN instr({text}, '-') > 0 AND substr({rest}, 1, 1) BETWEEN '0' AND '9' "
        f"THEN CAST(substr({rest}, 1, 18) AS INTEGER) ELSE 0 END)"
    )


def natural_order(column: ColumnElement) -> list[ColumnElement]:
    """ORDER BY terms sorting `column` (a room or building) by its numbers, then as text."""
    return [_LeadingNumber(column), _NumberAfterDash(column), column]


def natural_key(text: str | None) -> tuple[int, int, str]:
    """The Python key of the same order (None and empty text first)."""
    text = text or ""
    leading = _LEADING.match(text)
    after = _AFTER_DASH.match(text)
    return (
        int(leading.group()) if leading else 0,
        int(after.group(1)) if after else 0,
        text,
    )
