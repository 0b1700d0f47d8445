"""The arguments the service's commands share, each shown by one Chinese name wherever it is
taken: a ticket by its register number, a work order by its number, staff by name."""

from __future__ import annotations

from collections.abc import Callable

from crm.core.cliutil import argument


def ticket_argument(name: str = "number", **attrs) -> Callable:
    """A ticket by its register number (登记号), which its work orders share."""
    return argument(name, "登记号", **attrs)


def work_order_argument(name: str = "number", **attrs) -> Callable:
    """A work order by its number (登记号-序号)."""
    return argument(name, "派工单号", **attrs)


def staff_argument(name: str = "staff", **attrs) -> Callable:
    """A member of staff by name, as `crm staff list` shows them."""
    return argument(name, "员工姓名", **attrs)
