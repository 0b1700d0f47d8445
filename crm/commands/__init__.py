"""The core's click commands. Each module parses options, calls the library, renders.

Shared here: the App from the context, the one `--format` option and the one renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

FORMAT_CHOICES = ("table", "json", "csv")


def get_app():
    return click.get_current_context().find_object(_state_type()).app


def _state_type():
    from crm.cli import State

    return State


def format_option(func: Callable) -> Callable:
    """The shared `--format table|json|csv` option."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMAT_CHOICES),
        default="table",
        show_default=True,
        help="输出格式：表格、JSON 或 CSV。",
    )(func)


def emit(rows, fmt: str, columns: Sequence[tuple[str, str]] | None = None) -> None:
    from crm.core.render import render

    render(rows, fmt, columns)
