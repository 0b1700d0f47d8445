"""One format per kind of figure, for every table, record line and card: a column declares the
kind of its numbers as (key, header, KIND); JSON and CSV keep the number itself. This module
imports nothing, so command modules can name the kinds in their column lists at no cost.

| kind    | reads as        | for                                                        |
|---------|-----------------|------------------------------------------------------------|
| MONEY   | 12,345.60       | yuan booked: amounts, prices, balances, costs              |
| VALUE   | 300,191         | yuan estimated: lifetime values, profits, expected values  |
| RATE    | 62.6%           | shares and rates: satisfaction, timeliness, closure, ...   |
| NPS     | 27.5            | net promoter score, -100 to 100                            |
| SCORE   | 4.25, -0.36     | averages on a scale, gaps, strengths, probabilities        |
| MINUTES | 1,102           | durations in minutes (whole minutes)                       |
| HOURS   | 11.8            | durations in hours                                         |
| DECIMAL | 1,234.57        | any other fractional number (the default for a float)      |

Counts and codes are whole numbers as they are (no separator: 2026 is a year, 44 an id); a
Decimal is money wherever it appears.
"""

from __future__ import annotations

from typing import Any


class Figure:
    """How one kind of figure reads: `spec` is a format() spec; None reads as empty and a
    text (a range, a label the library made) as it is."""

    def __init__(self, name: str, spec: str):
        self.name = name
        self.spec = spec

    def __call__(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return format(value, self.spec)

    def __repr__(self) -> str:
        return f"Figure({self.name!r}, {self.spec!r})"


MONEY = Figure("money", ",.2f")
VALUE = Figure("value", ",.0f")
RATE = Figure("rate", ".1%")
NPS = Figure("nps", ".1f")
SCORE = Figure("score", ".2f")
MINUTES = Figure("minutes", ",.0f")
HOURS = Figure("hours", ",.1f")
DECIMAL = Figure("decimal", ",.2f")
