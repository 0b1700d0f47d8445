"""What every click command shares, core or plugin: the App of the running `crm`, the one
`--format` option and the one renderer. Imports only click, so `crm --help` stays fast."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

FORMAT_CHOICES = ("table", "json", "csv")
# How a household, a project and a team are named wherever a command takes one, as argument
# and as option.
HOUSEHOLD = "客户编号"
PROJECT = "项目名称"
TEAM = "团队代码"


def get_app():
    """The App built by the root `crm` group for this invocation."""
    return click.get_current_context().find_root().obj.app


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


class NamedArgument(click.Argument):
    """A positional argument shown by a Chinese name that says what goes there (客户编号),
    in the usage line and in click's errors ("缺少参数 “客户编号”"). click prints a metavar
    it is given as it is, so the [ ] of an optional argument and the ... of a repeated one,
    which it adds to its own, are added here."""

    def __init__(self, param_decls, label: str, **attrs):
        super().__init__(param_decls, **attrs)
        self.label = label
        shown = label if self.required else f"[{label}]"
        self.metavar = shown if self.nargs == 1 else f"{shown}..."

    def get_error_hint(self, ctx) -> str:
        # The name alone: “登记号”, not “登记号...” or “[值]”.
        return f"'{self.label}'"


def argument(name: str, label: str, **attrs) -> Callable:
    """A click argument `name` (the function's parameter) shown as `label`; the rest as for
    click.argument."""
    return click.argument(name, cls=NamedArgument, label=label, **attrs)


def household_argument(name: str = "code", **attrs) -> Callable:
    """The argument that names a household, by its code, in the core's commands and the
    plugins' alike."""
    return argument(name, HOUSEHOLD, **attrs)


def household_option(*decls: str, **attrs) -> Callable:
    """The option that names a household by its code, shown as household_argument shows it
    (`--household 客户编号`) in every command that filters or acts on one household; `decls`
    as for click.option, `--household` when none is given."""
    return click.option(*(decls or ("--household",)), metavar=HOUSEHOLD, **attrs)


def project_option(*decls: str, **attrs) -> Callable:
    """The option that names a project by its name (`--project 项目名称`), core's commands and
    the plugins' alike; `decls` as for click.option, `--project` when none is given."""
    return click.option(*(decls or ("--project",)), metavar=PROJECT, **attrs)


def team_option(*decls: str, **attrs) -> Callable:
    """The option that names a service team by its code, as `crm team add` names it
    (`--team 团队代码`); the service and satisfaction plugins both take it. `decls` as for
    click.option, `--team` when none is given."""
    return click.option(*(decls or ("--team",)), metavar=TEAM, **attrs)


def emit(
    rows,
    fmt: str,
    columns: Sequence[tuple] | None = None,
    drop: Sequence[str] = (),
    sections: Sequence[tuple] = (),
) -> None:
    """Rows as a table, JSON or CSV; a column (key, header, vocabulary) shows codes as labels
    outside JSON, (key, header, figure) a number in its kind's format; `sections` (title,
    key, columns) label the codes of the records inside each row in JSON, as emit_record
    does. A table too wide for the terminal leaves out first the columns whose keys `drop`
    lists, in that order (the least needed first), then columns from the right. A page of a
    listing (`crm.core.paging.Page`) is followed by its count
    (`page_footer`): a table by a line under it (none under （无记录）); JSON and CSV keep
    stdout for the data, and only when rows were left out say so on stderr."""
    from crm.core.render import render

    render(rows, fmt, columns, drop=drop, sections=sections)
    if getattr(rows, "total", None) is not None:
        if fmt == "table" and rows.total:
            click.echo(page_footer(rows))
        elif fmt != "table" and not rows.complete:
            click.echo(page_footer(rows), err=True)


def page_footer(page) -> str:
    """What a page shows of how many: 显示 1–100 条，共 2,345 条; when rows remain, how to see
    them."""
    shown, total, first = len(page), page.total, page.offset + 1
    if not shown:
        if not total:
            return "共 0 条。"
        return f"第 {first:,} 条起没有记录，共 {total:,} 条：请用更小的 --offset。"
    last = page.offset + shown
    if first == 1 and last >= total:
        return f"共 {total:,} 条，已全部显示。"
    text = f"显示 {first:,}–{last:,} 条，共 {total:,} 条"
    if last < total:
        limit = f"（每页 {page.limit:,} 条，可用 --limit 调整）" if page.limit else ""
        text += f"；其余请加 --offset {last}{limit}"
    return text + "。"


def paging(default: int | None = 100, unit: str = "条") -> Callable:
    """The shared `--limit/--offset` options of a listing; `default` None: no limit unless
    given. The command receives `limit` and `offset`."""

    def decorate(func: Callable) -> Callable:
        func = click.option(
            "--offset",
            type=click.IntRange(0),
            default=0,
            show_default=True,
            metavar="条数",
            help=f"跳过前面这么多{unit}（翻页：下一页从上一页的最后一{unit}之后开始）。",
        )(func)
        return click.option(
            "--limit",
            type=click.IntRange(1),
            default=default,
            show_default=default is not None,
            metavar="条数",
            help=f"最多显示{unit}数" + ("。" if default is not None else "（默认全部）。"),
        )(func)

    return decorate


def date_range(what: str, example: str = "2026-11-01") -> Callable:
    """The shared `--since/--until` options (local dates, both days included) on `what` (e.g.
    受理日期). The command receives `since` and `until` as aware UTC bounds of [since, until),
    checked while the options are parsed, before any work."""

    def bound(end: bool):
        def callback(ctx: click.Context, param: click.Parameter, value: str | None):
            title = "截止日期" if end else "起始日期"
            moment = day_bound(value, title, end=end)
            other = ctx.params.get("since" if end else "until")
            if moment is not None and other is not None:
                since, until = (other, moment) if end else (moment, other)
                if since >= until:
                    from crm.core.errors import CrmError

                    raise CrmError("起始日期晚于截止日期：请核对 --since 与 --until。")
            return moment

        return callback

    def decorate(func: Callable) -> Callable:
        func = click.option(
            "--until",
            metavar="日期",
            callback=bound(True),
            help=f"只看{what}在此日期及以前的（本地日期，含当天）。",
        )(func)
        return click.option(
            "--since",
            metavar="日期",
            callback=bound(False),
            help=f"只看{what}在此日期及以后的（本地日期，含当天），如 {example}。",
        )(func)

    return decorate


def emit_record(
    record: dict, fmt: str, labels: Sequence[tuple], sections: Sequence[tuple] = ()
) -> None:
    """One record (the result of an action or a `show`): label/value lines as a table, one
    JSON object, or a one-row CSV. Lists read as 、-joined text outside JSON; a label entry
    (key, title, vocabulary) shows the code by its label outside JSON and keeps it in JSON,
    its label beside it ("status_label"). `sections` (title, key, columns) are the lists of
    records inside the record (a ticket's events): in a table each under 【title】 after the
    lines, in JSON with their codes labelled the same way; a CSV row leaves them out."""
    from crm.core.render import (
        display_width,
        json_record,
        render,
        shown_rows,
        shown_value,
        terminal_width,
        to_json,
    )
    from crm.core.textwidth import wrap

    if fmt == "json":
        click.echo(to_json(json_record(record, labels, sections)))
        return
    shown = [(key, title) for key, title, *_ in labels if key in record]
    rows = shown_rows([record], labels)[0]
    flat = {k: "、".join(map(str, v)) if isinstance(v, list) else v for k, v in rows.items()}
    if fmt == "csv":
        render([flat], "csv", shown)
        return
    width = max((display_width(title) for _, title in shown), default=0)
    figures = {label[0]: label for label in labels}
    # A long value wraps under itself, within the terminal's width.
    room = max(terminal_width() - width - 2, 20)
    for key, title in shown:
        value = shown_value(flat.get(key), figures[key])
        lines = wrap(value, room)
        click.echo(f"{title}：{' ' * (width - display_width(title))}{lines[0]}".rstrip())
        for line in lines[1:]:
            click.echo(f"{' ' * (width + 2)}{line}")
    for title, key, columns in sections:
        click.echo(f"\n【{title}】")
        emit(record[key], "table", columns)


def at_option(func: Callable) -> Callable:
    """The shared `--at` option of every command that records something done."""
    return click.option(
        "--at",
        "at_text",
        metavar="时间",
        help="实际发生的时间（本地时间，如 2026-12-02 08:05），事后补登时填写；默认为现在。"
        "不能晚于现在，也不能早于所属记录的开始。",
    )(func)


def parse_at(text: str | None):
    """The `--at` value as an aware UTC datetime (None when not given)."""
    if text is None:
        return None
    from crm.core.clock import parse_local_minute

    return parse_local_minute(text, "发生时间")


def parse_day(text: str | None, what: str):
    """A date option (YYYY-MM-DD) as a date; None stays None; a bad one is one sentence."""
    import datetime as dt

    from crm.core.errors import CrmError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise CrmError(f"{what}“{text}”不是有效日期：请写成 2026-04-28 这样的格式。") from None


def parse_local_moment(text: str | None, what: str):
    """A time option (YYYY-MM-DD HH:MM, business zone) as an aware UTC datetime; None stays
    None; a bad one is one sentence."""
    import datetime as dt

    from crm.core.clock import as_local
    from crm.core.errors import CrmError

    if text is None:
        return None
    try:
        moment = dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise CrmError(
            f"{what}“{text}”不是有效时间：请写成 2026-12-02 09:00 这样的格式（业务时区）。"
        ) from None
    return as_local(moment).astimezone(dt.UTC)


def day_bound(text: str | None, what: str, end: bool = False):
    """A --since/--until date (YYYY-MM-DD) in the business zone as an aware UTC bound;
    `end` makes the day inclusive. None stays None."""
    import datetime as dt

    from crm.core.clock import day_start

    day = parse_day(text, what)
    if day is None:
        return None
    if end:
        day += dt.timedelta(days=1)
    return day_start(day).astimezone(dt.UTC)


def lazy_commands(
    cli: click.Group, names: Sequence[str], register: Callable[[click.Group], None]
) -> None:
    """Add the top-level commands `names`, which `register(cli)` adds, so that their modules
    load only when one of them runs or the commands are listed (`crm --help`): a command that
    reads a few rows should not pay for importing every other command. A group that cannot
    defer (a plain click.Group) gets them at once. `register` must add exactly `names`
    (tests/test_cli_meta.py checks every plugin's)."""
    defer = getattr(cli, "defer_commands", None)
    if defer is None:
        register(cli)
    else:
        defer(names, register)
