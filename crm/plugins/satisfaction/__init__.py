"""Satisfaction monitoring (客户满意度监测与反馈): surveys, satisfaction = experience − expectation,
KPIs and early warning. Hook implementations only; the logic sits in sibling modules."""

from pathlib import Path

from crm import hookimpl


@hookimpl
def migration_locations():
    return ("satisfaction", str(Path(__file__).parent / "migrations"))
