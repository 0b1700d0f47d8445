"""The arguments and options the service's commands share, each shown by one Chinese name
wherever it is taken: a ticket by its register number, a work order by its number, staff by
name."""

from __future__ import annotations

from collections.abc import Callable

import click

from crm.core.cliutil import argument

TICKET = "登记号"
WORK_ORDER = "派工单号"
STAFF = "员工姓名"


def ticket_argument(name: str = "number", **attrs) -> Callable:
    """A ticket by its register number (登记号), which its work orders share."""
    return argument(name, TICKET, **attrs)


def work_order_argument(name: str = "number", **attrs) -> Callable:
    """A work order by its number (登记号-序号)."""
    return argument(name, WORK_ORDER, **attrs)


def staff_argument(name: str = "staff", **attrs) -> Callable:
    """A member of staff by name, as `crm staff list` shows them."""
    return argument(name, STAFF, **attrs)


def ticket_option(*decls: str, **attrs) -> Callable:
    """An option naming a ticket by its register number (`--ticket 登记号`); `decls` as for
    click.option, `--ticket` when none is given."""
    return click.option(*(decls or ("--ticket",)), metavar=TICKET, **attrs)


def work_order_option(*decls: str, **attrs) -> Callable:
    """An option naming a work order by its number (`--work-order 派工单号`)."""
    return click.option(*(decls or ("--work-order",)), metavar=WORK_ORDER, **attrs)


def staff_option(*decls: str, **attrs) -> Callable:
    """An option naming a member of staff by name (`--assignee 员工姓名`); `decls` are
    required, the option's name says their part (--assignee, --owner, --to)."""
    return click.option(*decls, metavar=STAFF, **attrs)
