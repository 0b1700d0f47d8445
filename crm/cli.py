"""The root `crm` command: builds the App lazily and lets plugins add their commands.

Only click and pluggy are imported at start-up; everything heavier loads inside the command
that needs it, so `crm --help` stays fast.
"""

from __future__ import annotations

import sys
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


_PM = None


def plugin_manager():
    global _PM
    if _PM is None:
        from crm.core.plugins import make_plugin_manager

        _PM = make_plugin_manager(BUILTIN_PLUGINS)
    return _PM


class CrmGroup(click.Group):
    """Turns every CrmError (and database errors) into one sentence on stderr, and says
    click's own errors in Chinese (crm.core.clicktext)."""

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

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, prefix="用法：")

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
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _localise(sub)


@click.group(cls=CrmGroup, context_settings={"help_option_names": []})
@click.option(
    "--db",
    envvar="CRM_DATABASE_URL",
    metavar="URL",
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
    ctx.obj = State(db, user)


def _add_core_commands() -> None:
    from crm.commands import admin, demo, household, key, scheduler, simulate, transfer

    for module in (admin, household, transfer, demo, scheduler, simulate, key):
        module.register(cli)
    plugin_manager().hook.register_commands(cli=cli)
    _localise(cli)


_add_core_commands()


def main() -> None:
    try:
        cli.main(prog_name="crm")
    except KeyboardInterrupt:
        click.echo("已中断。", err=True)
        sys.exit(130)
