"""The root `crm` command: builds the App lazily and lets plugins add their commands.

Only click and pluggy are imported at start-up; everything heavier loads inside the command
that needs it, so `crm --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import ClassVar

import click

from crm import __version__
from crm.core.errors import CrmError
from crm.plugins import BUILTIN_PLUGINS


class State:
    """What the root options chose; the App is made on first use."""

    def __init__(self, db: str | None, user: str | None):
        self.db = db
        self.user_spec = user
        self._app = None

    @property
    def app(self):
        if self._app is None:
            import os

            from crm.core.app import App
            from crm.core.security import parse_user

            spec = self.user_spec or os.environ.get("CRM_USER")
            user = parse_user(spec) if spec else None
            self._app = App(self.db, user=user, pm=plugin_manager())
        return self._app

    def close(self) -> None:
        """Let go of the App's database connections, if an App was made."""
        if self._app is not None:
            self._app.dispose()


_PM = None


def plugin_manager():
    global _PM
    if _PM is None:
        from crm.core.plugins import make_plugin_manager

        _PM = make_plugin_manager(BUILTIN_PLUGINS)
    return _PM


class CrmGroup(click.Group):
    """The root group: loads a command's module when the command is called, and turns every
    CrmError (and database errors) into one sentence on stderr, and says click's own errors
    in Chinese (crm.core.clicktext).

    Commands are declared with `crm.core.cliutil.lazy_commands` (names and the function that
    adds them); `get_command` loads only the one asked for, while listing them (help,
    completion) or reading `commands` loads them all, so code that walks the tree sees
    every command."""

    def __init__(self, *args, **kwargs):
        # name -> the function that adds it (one function may add several names)
        self._deferred: dict[str, Callable[[click.Group], None]] = {}
        self._raw = 0  # > 0 while a module adds its commands: `commands` is then as it is
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> dict[str, click.Command]:
        if not self._raw:
            self._load(list(self._deferred))
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def defer_commands(self, names, register: Callable[[click.Group], None]) -> None:
        for name in names:
            self._deferred[name] = register

    def loaded_commands(self) -> dict[str, click.Command]:
        """The commands loaded so far (reading `commands` would load them all)."""
        return self._commands

    def deferred(self) -> dict[str, Callable[[click.Group], None]]:
        """The commands declared and not loaded yet, with the function that adds each."""
        return dict(self._deferred)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        self._raw += 1
        try:
            super().add_command(cmd, name)
        finally:
            self._raw -= 1

    def _load(self, names: list[str]) -> None:
        loaded = False
        for name in names:
            register = self._deferred.get(name)
            if register is None:
                continue
            for other in [n for n, r in self._deferred.items() if r is register]:
                del self._deferred[other]
            self._raw += 1
            try:
                register(self)
            finally:
                self._raw -= 1
            loaded = True
        if loaded:
            _localise(self)

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        self._load([cmd_name])
        return self._commands.get(cmd_name)

    def list_commands(self, ctx: click.Context | None) -> list[str]:
        return sorted(self.commands)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as exc:
            raise _chinese(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise _chinese(exc) from None
        except (click.Abort, EOFError, KeyboardInterrupt) as exc:
            raise _interrupted(exc) from None
        except CrmError as exc:
            # Messages quote what the user or a file gave (codes, names): escape it.
            click.echo(f"错误：{_printable(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            message = _database_message(exc)
            if message is None:
                raise
            click.echo(f"错误：{_printable(message)}", err=True)
            ctx.exit(2)


def _chinese(exc: click.ClickException) -> click.ClickException:
    from crm.core.clicktext import ChineseClickError

    if isinstance(exc, ChineseClickError) or type(exc).__name__ == "NoArgsIsHelpError":
        return exc  # already Chinese; a group called alone shows its (Chinese) help
    return ChineseClickError.of(exc)


def _interrupted(exc: BaseException) -> click.ClickException:
    """Ctrl-C, end of input at a prompt or click.Abort: one Chinese line, click's exit codes
    (1; 130 for Ctrl-C, as `main` below)."""
    from crm.core.clicktext import ChineseClickError

    if isinstance(exc, KeyboardInterrupt):
        click.echo(err=True)  # ends the line the terminal's ^C is on
        return ChineseClickError(None, "已中断。", 130, prefix="")
    if isinstance(exc, EOFError):
        click.echo(err=True)
    return ChineseClickError(None, "已取消。", 1, prefix="")


def _printable(text: str) -> str:
    """Escape control characters line by line (a message may list things on lines)."""
    from crm.core.render import printable

    return "\n".join(printable(line) for line in text.split("\n"))


def _database_message(exc: Exception) -> str | None:
    from crm.core.errors import database_message

    return database_message(exc)


class ChineseHelpFormatter(click.HelpFormatter):
    """click's own headings in Chinese, to match our help texts."""

    HEADINGS: ClassVar[dict[str, str]] = {
        "Options": "选项",
        "Commands": "命令",
        "Arguments": "参数",
        "Positional arguments": "参数",
    }

    # click measures text with len() and wraps with textwrap: a Chinese character counts one
    # column instead of two (misaligned columns, lines past the edge) and a help text without
    # spaces is one long "word" cut anywhere ("revis/it"). These measure terminal columns and
    # break between Chinese characters or at spaces, never inside an ASCII word.

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        from crm.core.textwidth import display_width, fill

        head = f"{' ' * self.current_indent}用法：{prog} "
        if not args:
            self.write(head.rstrip() + "\n")
            return
        indent = " " * display_width(head)
        self.write(fill(args, self.width, initial_indent=head, subsequent_indent=indent) + "\n")

    def write_text(self, text: str) -> None:
        from crm.core.textwidth import fill

        indent = " " * self.current_indent
        self.write(fill(text, self.width, indent, indent, preserve_paragraphs=True) + "\n")

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        from crm.core.textwidth import display_width, fill

        rows = list(rows)
        first_col = min(max((display_width(r[0]) for r in rows), default=0), col_max)
        first_col += col_spacing
        text_width = max(self.width - first_col - 2, 10)
        margin = " " * self.current_indent
        for term, *rest in rows:
            definition = rest[0] if rest else ""
            self.write(f"{margin}{term}")
            if not definition:
                self.write("\n")
                continue
            if display_width(term) <= first_col - col_spacing:
                self.write(" " * (first_col - display_width(term)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            lines = fill(definition, text_width, preserve_paragraphs=True).splitlines() or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write((f"{' ' * (first_col + self.current_indent)}{line}").rstrip() + "\n")

    def section(self, name: str):
        return super().section(self.HEADINGS.get(name, name))

    def write_heading(self, heading: str) -> None:
        self.write(f"{'':>{self.current_indent}}{heading}：\n")


class ClickWordsFormatter(ChineseHelpFormatter):
    """click's words inside the definition lists in Chinese too: the type placeholders
    (TEXT, INTEGER) and the extras after an option's help ([default: table; required])."""

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        from crm.core.clicktext import help_extra, placeholders

        rows = [(placeholders(term), help_extra(text)) for term, text in rows]
        super().write_dl(rows, col_max, col_spacing)


class ChineseContext(click.Context):
    formatter_class = ClickWordsFormatter


def _show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()


def _localise(command: click.Command) -> None:
    """Give every command the Chinese help formatter and a `-h/--help` described in Chinese
    (click's built-in help option is switched off at the root for this)."""
    command.context_class = ChineseContext
    command.options_metavar = "[选项]"
    if isinstance(command, click.Group):
        command.subcommand_metavar = "命令 [参数]..."
    if not any("--help" in param.opts for param in command.params):
        command.params.append(
            click.Option(
                ["-h", "--help"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_show_help,
                help="显示本帮助并退出。",
            )
        )
    if isinstance(command, CrmGroup):
        subs = command.loaded_commands()
    elif isinstance(command, click.Group):
        subs = command.commands
    else:
        return
    for sub in list(subs.values()):
        _localise(sub)


@click.group(cls=CrmGroup, context_settings={"help_option_names": []})
@click.option(
    "--db",
    envvar="CRM_DATABASE_URL",
    metavar="地址",
    help="数据库地址（默认读取 CRM_DATABASE_URL，否则使用用户数据目录中的 SQLite 文件）。",
)
@click.option(
    "--as",
    "user",
    metavar="[姓名:]角色",
    help="以谁的身份操作，如 王芳:manager；默认读取 CRM_USER。角色：sales、agent、manager、analyst、admin。",
)
@click.version_option(
    __version__, prog_name="crm", message="%(prog)s 版本 %(version)s", help="显示版本并退出。"
)
@click.pass_context
def cli(ctx: click.Context, db: str | None, user: str | None) -> None:
    """crm：房地产客户关系管理平台（客户数据库、服务处理、满意度、盈利能力、协调调度）。"""
    # `crm shell` runs each line through this group with itself as obj: the commands typed
    # there share its State, and so one App, engine and plugin manager.
    desk = ctx.obj
    if desk is not None:
        ctx.obj = desk.state_for(ctx)
    else:
        ctx.obj = State(db, user)
        # Connections are closed when the command ends, not left to the process's exit: a
        # copy forked by the desk server (crm.forkserver) ends without finalising.
        ctx.call_on_close(ctx.obj.close)


# The core's command modules and the top-level commands each one's `register` adds.
CORE_COMMANDS = {
    "crm.commands.admin": ("init", "db", "plugins", "audit"),
    "crm.commands.household": ("household",),
    "crm.commands.transfer": ("import", "export"),
    "crm.commands.demo": ("demo",),
    "crm.commands.scheduler": ("scheduler",),
    "crm.commands.simulate": ("simulate",),
    "crm.commands.key": ("key",),
    "crm.commands.shell": ("shell", "desk"),
    "crm.commands.server": ("server",),
}


def _core_module(dotted: str) -> Callable[[click.Group], None]:
    def register(group: click.Group) -> None:
        importlib.import_module(dotted).register(group)

    return register


def _declare_commands(group: click.Group) -> None:
    """The core's commands and the plugins' (through their register_commands hook), each
    loaded when first used."""
    from crm.core.cliutil import lazy_commands

    for dotted, names in CORE_COMMANDS.items():
        lazy_commands(group, names, _core_module(dotted))
    plugin_manager().hook.register_commands(cli=group)
    _localise(group)


_declare_commands(cli)


def main(args: list[str] | None = None) -> None:
    """Run one `crm` command line (`args`, else the process's own) and exit with its code."""
    from crm.core.startup import defer_collection

    defer_collection()
    try:
        cli.main(args=args, prog_name="crm")
    except KeyboardInterrupt:
        click.echo("已中断。", err=True)
        sys.exit(130)
