"""The desk behind `crm shell`: one process that runs the crm commands typed at its prompt.

Each line goes through the root group's own `main`, as on the command line, so output, errors
and exit codes are the same; the root group's callback asks the desk for the State of the line
(`state_for`), which is the session's, so every line shares one App, engine and plugin manager.
Nothing else is kept between lines: every command opens and closes its own sessions (no
transaction stays open, a write is visible to the next line) and reads the clock itself.

Imported only by `crm shell`; the prompt itself (prompt-toolkit) is in crm.commands.prompt,
loaded only when a person types at a terminal, not for a piped script.
"""

from __future__ import annotations

import bisect
import shlex
import sys
import traceback
from collections.abc import Iterable, Iterator

import click

LEAVE_WORDS = frozenset({"exit", "quit", "退出"})
HELP_WORDS = frozenset({"help", "帮助"})
# Typed at the prompt besides the commands (completed at the start of a line).
DESK_WORDS = {"help": "显示全部命令", "exit": "退出工作台", "quit": "退出工作台"}
# Completion loads at most this many of each kind of number, the newest: a desk completes what
# is being worked on, and a portfolio of any size costs the same.
IDENTIFIER_LIMIT = 5000
# At most this many completions are offered at once.
SHOWN = 50
SHLEX_ERRORS = {
    "No closing quotation": "引号不成对",
    "No escaped character": "行末的反斜杠后面缺少字符",
}


class Leave(Exception):
    """`exit` or `quit` was typed."""


class Desk:
    """Runs typed lines through `group` with one State (and so one App)."""

    def __init__(self, group: click.Group, state):
        self.group = group
        self.state = state
        self._one_off: list = []
        self._identifiers: list[tuple[str, str, str]] | None = None
        self._key_mark = self._read_key_mark()

    # --- running lines ---------------------------------------------------------------------

    def state_for(self, ctx: click.Context):
        """The State for one line's root context, called by the root group's callback: the
        session's, unless the line gives its own --db or --as (then a State of its own for
        that line, on top of the session's options)."""
        from click.core import ParameterSource

        given = {
            name: ctx.params[name]
            for name in ("db", "user")
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
        }
        if not given:
            return self.state
        state = type(self.state)(
            given.get("db", self.state.db), given.get("user", self.state.user_spec)
        )
        self._one_off.append(state)
        return state

    def run(self, line: str) -> int | None:
        """Run one typed line and return its exit code (None for a blank line or a comment).
        Raises Leave for `exit` or `quit`."""
        words = self.words(line)
        if words is None:
            return 2
        if not words:
            return None
        if words[0] in LEAVE_WORDS and len(words) == 1:
            raise Leave
        if words[0] in HELP_WORDS:
            words = [*words[1:], "--help"]
        if words[0] in ("shell", "desk"):
            click.echo("错误：已在 crm 工作台中：直接输入命令即可，exit 退出。", err=True)
            return 2
        self._check_key()
        try:
            return self._invoke(words)
        finally:
            for state in self._one_off:
                state.close()
            self._one_off.clear()
            # Any command may have written: numbers are read again at the next completion.
            self._identifiers = None

    @staticmethod
    def words(line: str) -> list[str] | None:
        """The line split as a POSIX shell would (quotes, backslashes), without a leading
        `crm`; an empty list for a blank line or a comment; None (and the error printed) for a
        line that does not split."""
        if line.lstrip().startswith("#"):
            return []
        try:
            words = shlex.split(line)
        except ValueError as exc:
            reason = SHLEX_ERRORS.get(str(exc), "无法按 shell 的规则拆分")
            click.echo(f"错误：这一行{reason}：请检查引号后重新输入。", err=True)
            return None
        return words[1:] if words[:1] == ["crm"] else words

    def _invoke(self, words: list[str]) -> int:
        try:
            self.group.main(args=words, prog_name="crm", obj=self)
        except SystemExit as exc:
            return exit_status(exc.code)
        except Exception:  # noqa: BLE001 - a bug in a command must not end the session
            # What the command line would show as a traceback before exiting 1; the desk goes on.
            traceback.print_exc()
            return 1
        return 0

    def _read_key_mark(self) -> tuple | None:
        """What identifies the key file now (it changes when a key is rotated)."""
        from crm.core.errors import CrmError

        try:
            path = self.state.app.key_file
            found = path.stat()
        except (CrmError, OSError):
            return None
        return (str(path), found.st_ino, found.st_mtime_ns, found.st_size)

    def _check_key(self) -> None:
        """A rotated key (`crm key rotate` here or in another process) makes the App's cached
        key stale: start a fresh State, so the next command loads and checks the new one."""
        mark = self._read_key_mark()
        if mark == self._key_mark:
            return
        old = self.state
        self.state = type(old)(old.db, old.user_spec)
        old.close()
        self._key_mark = self._read_key_mark()

    def close(self) -> None:
        self.state.close()

    # --- the loops -------------------------------------------------------------------------

    def piped(self, lines: Iterable[str], exit_on_error: bool = False) -> int:
        """Run the lines of a script; the exit code is the last command's (with `exit_on_error`,
        the first failure's, and nothing after it runs)."""
        code = 0
        for line in lines:
            try:
                result = self.run(line.rstrip("\r\n"))
            except Leave:
                break
            if result is None:
                continue
            code = result
            if code and exit_on_error:
                break
        return code

    # --- completion ------------------------------------------------------------------------

    def identifiers(self) -> list[tuple[str, str, str]]:
        """(upper-case form, number, label) of the household codes and of the numbers the
        plugins offer, sorted; read from the database at first use after each command."""
        if self._identifiers is None:
            self._identifiers = self._load_identifiers()
        return self._identifiers

    def _load_identifiers(self) -> list[tuple[str, str, str]]:
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        from crm.core.errors import CrmError
        from crm.core.models import Household

        found: list[tuple[str, str]] = []
        try:
            app = self.state.app
            with app.session() as session:
                codes = session.scalars(
                    select(Household.code).order_by(Household.id.desc()).limit(IDENTIFIER_LIMIT)
                )
                found.extend((code, "客户编号") for code in codes)
                for offered in app.pm.hook.shell_identifiers(
                    session=session, limit=IDENTIFIER_LIMIT
                ):
                    for label, numbers in (offered or {}).items():
                        found.extend((number, label) for number in numbers[:IDENTIFIER_LIMIT])
        except (CrmError, SQLAlchemyError):
            # A database that cannot be read completes nothing; the next command says why.
            return []
        return sorted({(text.upper(), text, label) for text, label in found})

    def matching(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(number, label) of the known numbers starting with `prefix`, ignoring case."""
        known = self.identifiers()
        key = prefix.upper()
        start = bisect.bisect_left(known, (key,))
        for upper, text, label in known[start : start + SHOWN]:
            if not upper.startswith(key):
                break
            yield text, label

    def completions(self, before: str) -> list[tuple[str, int, str]]:
        """What may follow the text before the cursor: (text, start position, description)."""
        try:
            words = shlex.split(before)
        except ValueError:
            return []  # inside an open quote: free text
        if before and not before[-1].isspace() and words:
            incomplete = words.pop()
        else:
            incomplete = ""
        if words[:1] == ["crm"]:
            words = words[1:]
        command, value_of, position = _resolve(self.group, words)
        if value_of is not None:
            found = self._values(value_of, incomplete)
        elif incomplete.startswith("-"):
            found = _option_names(command, incomplete)
        elif isinstance(command, click.Group):
            found = _command_names(command, incomplete)
            if command is self.group and not words:
                found += [(w, m) for w, m in DESK_WORDS.items() if w.startswith(incomplete)]
        else:
            found = self._values(_argument_at(command, position), incomplete)
        return [(text, -len(incomplete), meta) for text, meta in found[:SHOWN]]

    def _values(self, param: click.Parameter | None, incomplete: str) -> list[tuple[str, str]]:
        if param is None:
            return []
        if isinstance(param.type, click.Choice):
            return [(str(c), "") for c in param.type.choices if str(c).startswith(incomplete)]
        if param.type is not click.STRING or not incomplete:
            return []
        # A parameter named for what it takes (客户编号, 登记号 …: cliutil.argument, the
        # options' metavars) is offered only numbers of that kind, and one named for anything
        # else (文字, 姓名) none; an unnamed one, any.
        name = getattr(param, "label", None) or getattr(param, "metavar", None)
        found = self.matching(incomplete)
        if name is None:
            return list(found)
        return [(text, label) for text, label in found if label == name]


def _resolve(group: click.Group, words: list[str]):
    """Follow the typed words down the command tree: the command reached, the option whose
    value comes next (or None) and how many positional words the command has been given."""
    command: click.Command = group
    position = 0
    pending: click.Option | None = None
    for word in words:
        if pending is not None:
            pending = None
            continue
        if word.startswith("-") and word != "-":
            option = _option(command, word.split("=", 1)[0])
            if option is not None and _takes_value(option) and "=" not in word:
                pending = option
            continue
        if isinstance(command, click.Group) and word in command.commands:
            command, position = command.commands[word], 0
            continue
        position += 1
    return command, pending, position


def _option(command: click.Command, name: str) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _takes_value(option: click.Option) -> bool:
    return not option.is_flag and not option.count


def _argument_at(command: click.Command, position: int) -> click.Argument | None:
    for param in command.params:
        if not isinstance(param, click.Argument):
            continue
        if param.nargs < 0 or position < param.nargs:
            return param
        position -= param.nargs
    return None


def _option_names(command: click.Command, incomplete: str) -> list[tuple[str, str]]:
    found = []
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            for name in (*param.opts, *param.secondary_opts):
                if name.startswith(incomplete) and name.startswith("--"):
                    found.append((name, _short(param.help)))
    return sorted(found)


def _command_names(group: click.Group, incomplete: str) -> list[tuple[str, str]]:
    return [
        (name, command.get_short_help_str(40))
        for name, command in sorted(group.commands.items())
        if name.startswith(incomplete) and not command.hidden
    ]


def _short(text: str | None, width: int = 40) -> str:
    first = (text or "").strip().split("\n", 1)[0]
    return first if len(first) <= width else first[: width - 1] + "…"


def exit_status(code) -> int:
    """sys.exit's argument as the process's exit status (a message means 1, as Python does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    click.echo(code, err=True)
    return 1


def lines_of(stream) -> Iterator[str]:
    """The lines of a text stream, read one at a time (a script may be fed as it is written)."""
    while True:
        line = stream.readline()
        if not line:
            return
        yield line


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
