"""click's own words in Chinese: its usage errors, its help-line extras and its prompts' replies.

click writes its messages through `gettext.gettext`, which only translates when a compiled
catalogue and a Chinese locale are installed on the machine; we cannot count on either, and
switching gettext's global domain would change other libraries too. So the root group catches
click's exceptions and this module writes them again in Chinese: from the exception's own fields
where it has them (the option that does not exist, the parameter that is missing, the choices),
and otherwise by reading click's formatted text against click's message templates (MESSAGES,
the msgids of click 8.1–8.5, copied verbatim), much as a gettext catalogue would. A message
that matches no template (one of ours, already Chinese) is left as it is.

Imports only click: the help formatter uses it on every `--help`.
"""

from __future__ import annotations

import ast
import re
from functools import cache

import click

# click's message templates -> ours. Placeholders keep click's names; a `!r` field arrives
# quoted by repr and is shown in Chinese quotes.
MESSAGES = {
    "No such option {name!r}.": "没有选项 {name}。",
    "No such command {name!r}.": "没有命令 {name}。",
    "Did you mean {possibility}?": "是不是想用 {possibility}？",
    "(Did you mean one of: {possibilities}?)": "是不是想用其中之一：{possibilities}？",
    "Missing command.": "缺少子命令。",
    "Got unexpected extra argument ({args})": "多出了参数：{args}。",
    "Got unexpected extra arguments ({args})": "多出了参数：{args}。",
    "Option {name!r} requires an argument.": "选项 {name} 后面要跟一个值。",
    "Option {name!r} requires {nargs} arguments.": "选项 {name} 后面要跟 {nargs} 个值。",
    "Option {name!r} does not take a value.": "选项 {name} 不带值。",
    "Argument {name!r} takes {nargs} values.": "参数 {name} 要 {nargs} 个值。",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的值无效：{message}",
    "Invalid value: {message}": "值无效：{message}",
    "{value!r} is not {choice}.": "{value} 不可用：只能是 {choice}。",
    "{value!r} is not one of {choices}.": "{value} 不在可选的值中：{choices}。",
    "{value} is not in the range {range}.": "{value} 超出了允许的范围 {range}。",
    "{value!r} is not a valid {number_type}.": "{value} 不是有效的{number_type}。",
    "{value!r} is not a valid boolean. Recognized values: {states}": (
        "{value} 不是有效的是/否值：可用 {states}。"
    ),
    "{value!r} is not a valid UUID.": "{value} 不是有效的 UUID。",
    "{value!r} does not match the format {format}.": "{value} 不符合格式 {format}。",
    "{value!r} does not match the formats {formats}.": "{value} 不符合任何一种格式：{formats}。",
    "{name} {filename!r} does not exist.": "{name} {filename} 不存在。",
    "{name} {filename!r} is a file.": "{name} {filename} 是文件，这里要的是文件夹。",
    "{name} {filename!r} is a directory.": "{name} {filename} 是文件夹，这里要的是文件。",
    "{name} {filename!r} is not readable.": "{name} {filename} 没有读取权限。",
    "{name} {filename!r} is not writable.": "{name} {filename} 没有写入权限。",
    "{name} {filename!r} is not executable.": "{name} {filename} 不可执行。",
    "Takes {nargs} values but 1 was given.": "要 {nargs} 个值，只给了 1 个。",
    "Takes {nargs} values but {len} were given.": "要 {nargs} 个值，却给了 {len} 个。",
    "{len_type} values are required, but {len_value} was given.": (
        "要 {len_type} 个值，却给了 {len_value} 个。"
    ),
    "{len_type} values are required, but {len_value} were given.": (
        "要 {len_type} 个值，却给了 {len_value} 个。"
    ),
    "Value must be an iterable.": "这里要一组值。",
    "Could not open file {filename!r}: {message}": "无法打开文件 {filename}：{message}",
    "unknown error": "未知错误",
    "Missing parameter: {param_name}": "缺少参数 “{param_name}”。",
    "Aborted!": "已取消。",
    "Error: The two entered values do not match.": "错误：两次输入的不一致。",
    "Error: invalid input": "错误：输入无效。",
    # The extras click appends to an option's help line, in [ ] and separated by "; ".
    "default: {default}": "默认：{default}",
    "required": "必填",
    "env var: {var}": "环境变量：{var}",
    "(dynamic)": "（动态）",
    # What the operating system says about a file click could not open.
    "No such file or directory": "文件不存在",
    "Permission denied": "没有权限",
    "Is a directory": "这是文件夹",
}
# Words click puts into a message's fields.
WORDS = {
    "integer": "整数",
    "float": "数",
    "integer range": "整数",
    "float range": "数",
    "file": "文件",
    "directory": "文件夹",
    "path": "路径",
    "File": "文件",
    "Directory": "文件夹",
    "Path": "路径",
}

_FIELD = re.compile(r"\{(\w+)(![rs])?\}")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


@cache
def _patterns() -> list[tuple[re.Pattern, str, frozenset[str]]]:
    """Each template as a regular expression with one named group per field."""
    compiled = []
    for english, chinese in MESSAGES.items():
        parts, quoted, position = [], set(), 0
        for match in _FIELD.finditer(english):
            parts.append(re.escape(english[position : match.start()]))
            parts.append(f"(?P<{match[1]}>.+?)")
            if match[2] == "!r":
                quoted.add(match[1])
            position = match.end()
        parts.append(re.escape(english[position:]))
        literal = len(_FIELD.sub("", english))
        compiled.append(
            (literal, re.compile("".join(parts), re.DOTALL), chinese, frozenset(quoted))
        )
    # Templates that begin with words before those that begin with a field ("Invalid value:
    # {message}" must not be read as a value that "is not a valid integer"), then the most
    # specific first ("is not one of {choices}" before "is not {choice}").
    compiled.sort(key=lambda entry: (entry[1].pattern.startswith("(?P<"), -entry[0]))
    return [entry[1:] for entry in compiled]


def quoted(text: str) -> str:
    """Every 'x' (a Python repr, as click quotes values) as “x”, a list's commas as 、."""

    def one(match: re.Match) -> str:
        try:
            return f"“{ast.literal_eval(match[0])}”"
        except (ValueError, SyntaxError):
            return f"“{match[1] if match[1] is not None else match[2]}”"

    return _QUOTED.sub(one, text).replace("”, “", "”、“")


def translate(text: str) -> str:
    """click's formatted message in Chinese; a text no template matches comes back unchanged."""
    stripped = text.strip()
    for pattern, chinese, repr_fields in _patterns():
        match = pattern.fullmatch(stripped)
        if match is None:
            continue
        fields = {}
        for name, value in match.groupdict().items():
            if name == "message":
                fields[name] = translate(value)
            elif name in repr_fields:
                fields[name] = quoted(value)
            else:
                fields[name] = WORDS.get(value, quoted(value))
        return chinese.format(**fields)
    return text


def help_extra(help_text: str) -> str:
    """An option's help line with click's trailing extras ("[default: table; required]") in
    Chinese ("[默认：table；必填]")."""
    match = re.search(r"\[([^\[\]]*)\]$", help_text)
    if match is None:
        return help_text
    items = [translate(item) for item in match[1].split("; ")]
    return f"{help_text[: match.start()]}[{'；'.join(items)}]"


# The placeholders click gives an option from its type (ParamType.name upper-cased).
PLACEHOLDERS = {
    "TEXT": "文本",
    "INTEGER RANGE": "整数",
    "INTEGER": "整数",
    "FLOAT RANGE": "数",
    "FLOAT": "数",
    "BOOLEAN": "是/否",
    "FILENAME": "文件",
    "FILE": "文件",
    "DIRECTORY": "文件夹",
    "PATH": "路径",
    "DATETIME": "时间",
    "UUID": "UUID",
}
_PLACEHOLDER = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, PLACEHOLDERS)) + r")(?![\w-])")


def placeholders(term: str) -> str:
    """An option's names and placeholder ("--limit INTEGER RANGE") with click's type
    placeholder in Chinese ("--limit 整数"); option names, being lower case, are left alone."""
    return _PLACEHOLDER.sub(lambda match: PLACEHOLDERS[match[1]], term)


def _hint(param: click.Parameter | None, ctx: click.Context | None, given) -> str:
    """How the message names a parameter: “--month”, “CODE” or “--to / -t”."""
    if given is not None:
        names = [given] if isinstance(given, str) else list(given)
        return " / ".join(quoted(name) if name[:1] in "'\"" else f"“{name}”" for name in names)
    if param is None:
        return ""
    return quoted(param.get_error_hint(ctx))


def _suggestions(possibilities) -> str:
    if not possibilities:
        return ""
    names = "、".join(f"“{name}”" for name in sorted(possibilities))
    if len(possibilities) == 1:
        return MESSAGES["Did you mean {possibility}?"].format(possibility=names)
    return MESSAGES["(Did you mean one of: {possibilities}?)"].format(possibilities=names)


def message(exc: click.ClickException) -> str:
    """The sentence after 错误：for one of click's exceptions."""
    if isinstance(exc, click.NoSuchOption) or type(exc).__name__ == "NoSuchCommand":
        # NoSuchCommand (click 8.4+) carries its suggestions like NoSuchOption
        return translate(exc.message) + _suggestions(exc.possibilities)
    if isinstance(exc, click.MissingParameter):
        return _missing(exc)
    if isinstance(exc, click.BadParameter):
        hint = _hint(exc.param, exc.ctx, exc.param_hint)
        reason = translate(exc.message)
        return f"{hint} 的值无效：{reason}" if hint else f"值无效：{reason}"
    if isinstance(exc, click.FileError):
        return f"无法打开文件 “{exc.ui_filename}”：{translate(exc.message)}。"
    return translate(exc.format_message())


def _missing(exc: click.MissingParameter) -> str:
    kind = exc.param_type or (exc.param.param_type_name if exc.param is not None else None)
    word = {"option": "选项", "argument": "参数"}.get(kind or "", "参数")
    hint = _hint(exc.param, exc.ctx, exc.param_hint)
    text = f"缺少{word} {hint}。" if hint else f"缺少{word}。"
    if exc.message:
        text += translate(exc.message)
    choices = getattr(getattr(exc.param, "type", None), "choices", None)
    if choices:
        text += "可选：" + "、".join(str(choice) for choice in choices) + "。"
    return text


def usage_text(exc: click.UsageError) -> str:
    """The lines before 错误：for a usage error: the command's usage and where its help is."""
    ctx = exc.ctx
    if ctx is None:
        return ""
    lines = [ctx.get_usage()]
    if any("-h" in param.opts for param in ctx.command.params if isinstance(param, click.Option)):
        lines.append(f"运行 “{ctx.command_path} -h” 查看帮助。")
    return "\n".join(lines) + "\n"


class ChineseClickError(click.ClickException):
    """One of click's exceptions, said in Chinese: the usage and help hint of a usage error,
    then 错误：one sentence; the exit code stays click's (2 for usage, 1 otherwise)."""

    def __init__(
        self, original: click.ClickException | None, text: str, exit_code: int, prefix="错误："
    ):
        super().__init__(text)
        self.prefix = prefix
        self.original = original
        self.exit_code = exit_code  # click's class-level code, kept per instance
        self.usage = usage_text(original) if isinstance(original, click.UsageError) else ""

    @classmethod
    def of(cls, exc: click.ClickException) -> ChineseClickError:
        return cls(exc, message(exc), exc.exit_code)

    def show(self, file=None) -> None:
        if self.usage:
            click.echo(self.usage, file=file, err=file is None)
        click.echo(f"{self.prefix}{self.message}", file=file, err=file is None)
