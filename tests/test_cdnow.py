"""The purchase models reproduce the published CDNOW fits from data that went through the normal
purchase import and the SQL summary (BG/NBD: Fader, Hardie and Lee 2005; Gamma-Gamma: their
iso-value paper, figures as in the `lifetimes` documentation)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from crm.core.db import transaction
from crm.core.importing import import_file
from crm.core.models import Household, Purchase
from crm.plugins.profitability import bgnbd, gammagamma
from crm.plugins.profitability.history import purchase_summary

CDNOW = Path(__file__).resolve().parent / "data" / "cdnow"
CALIBRATION_END = dt.date(1997, 9, 30)


def three_figures(value: float) -> str:
    return f"{value:.3g}"


def write_import_files(folder: Path) -> tuple[Path, Path]:
    """CDNOW_sample.txt (master id, customer id, YYYYMMDD, cds, dollars) as import files."""
    lines = (CDNOW / "CDNOW_sample.txt").read_text().split("\n")
    records = [line.split() for line in lines if line.strip()]
    households, purchases = folder / "households.csv", folder / "purchases.csv"
    with households.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["code", "name"])
        for customer in sorted({record[1] for record in records}):
            out.writerow([customer, f"CDNOW {customer}"])
    with purchases.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["contract_no", "household_code", "purchase_date", "amount"])
        for number, (_master, customer, day, _cds, dollars) in enumerate(records, 1):
            date = dt.datetime.strptime(day, "%Y%m%d").date()
            out.writerow([f"CD{number:05d}", customer, date.isoformat(), dollars])
    return households, purchases


def published_summary() -> dict[str, tuple[float, ...]]:
    with (CDNOW / "cdnow_customers_summary_with_transactions.csv").open(newline="") as handle:
        return {
            f"{int(row['ID']):04d}": tuple(float(row[k]) for k in ("x", "t_x", "T", "zbar"))
            for row in csv.DictReader(handle)
        }


def test_cdnow_through_the_import_reproduces_the_published_fits(app, tmp_path):
    households, purchases = write_import_files(tmp_path)
    with app.session() as session, transaction(session):
        assert import_file(session, "households", households).inserted == 2357
        assert import_file(session, "purchases", purchases).inserted == 6919

    with app.session() as session:
        summary = purchase_summary(session, CALIBRATION_END, "weeks")
        codes = dict(session.execute(select(Household.id, Household.code)).all())

    # The SQL summary is the published one, customer by customer.
    expected = published_summary()
    assert len(summary.household_id) == len(expected) == 2357
    got = np.column_stack([summary.x, summary.t_x, summary.T, summary.mean_repeat_spend])
    want = np.array([expected[codes[int(ident)]] for ident in summary.household_id])
    np.testing.assert_allclose(got, want, atol=0.0051)

    model = bgnbd.fit(summary.x, summary.t_x, summary.T)
    assert model.n == 2357
    assert [three_figures(v) for v in (model.r, model.alpha, model.a, model.b)] == [
        three_figures(v) for v in (0.243, 4.414, 0.793, 2.426)
    ]
    assert model.log_likelihood == pytest.approx(-9582.4, abs=0.1)

    spend = gammagamma.fit(summary.x, summary.mean_repeat_spend)
    assert spend.n == 946
    assert [three_figures(v) for v in (spend.p, spend.q, spend.gamma)] == [
        three_figures(v) for v in (6.25, 3.74, 15.44)
    ]


def test_summary_collapses_days_stops_at_the_calibration_end_and_keeps_the_cohort(session):
    first, second = Household(code="A", name="甲"), Household(code="B", name="乙")
    session.add_all([first, second])
    session.flush()
    sales = [
        (first, "2024-01-01", "100"),
        (first, "2024-01-01", "50"),  # same day: one purchase of 150
        (first, "2024-01-15", "30"),
        (first, "2024-01-15", "10"),
        (first, "2024-02-12", "20"),
        (first, "2024-03-01", "999"),  # after the calibration end
        (second, "2024-02-05", "70"),
    ]
    session.add_all(
        Purchase(
            contract_no=f"C{number}",
            household_id=household.id,
            purchase_date=dt.date.fromisoformat(day),
            amount=amount,
        )
        for number, (household, day, amount) in enumerate(sales)
    )
    session.flush()
    end = dt.date(2024, 2, 26)

    weeks = purchase_summary(session, end, "weeks")
    assert weeks.household_id.tolist() == [first.id, second.id]
    assert weeks.x.tolist() == [2.0, 0.0]
    assert weeks.t_x.tolist() == [6.0, 0.0]
    assert weeks.T.tolist() == [8.0, 3.0]
    assert weeks.mean_repeat_spend.tolist() == [30.0, 0.0]  # (40 + 20) / 2; none for B

    months = purchase_summary(session, end, "months")
    assert months.T == pytest.approx(np.array([56, 21]) / (365.2425 / 12))

    cohort = purchase_summary(session, end, "weeks", since=dt.date(2024, 2, 1))
    assert cohort.household_id.tolist() == [second.id]

    empty = purchase_summary(session, dt.date(2023, 12, 31), "weeks")
    assert empty.x.size == 0 and empty.household_id.dtype == np.int64
