"""click's own messages in Chinese: usage errors, help extras, version, prompts' replies.

The CLI cases run through the real `crm` group (they fail while parsing, before any database is
opened); the catalogue cases hold crm.core.clicktext to click's own message templates, so a
click upgrade that adds or rewords a message fails here instead of reaching a user in English.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from crm.cli import cli
from crm.core import clicktext

ENGLISH = re.compile(r"[A-Za-z]{3,}")


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, prog_name="crm")


def _english_words(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Words of three or more ASCII letters left in `text`, apart from what is quoted (“…”:
    names and values as typed) and the command line (crm, the command path, placeholders)
    given in `allowed`."""
    text = re.sub(r"“[^”]*”", "", text)
    for word in allowed:
        text = text.replace(word, "")
    return ENGLISH.findall(text)


@pytest.mark.parametrize(
    ("args", "expected", "typed"),
    [
        (("ticket", "list", "--bogus", "H1"), "错误：没有选项 “--bogus”。", ()),
        (("ticket", "list", "--limt", "5"), "没有选项 “--limt”。是不是想用 “--limit”？", ()),
        (("ticket", "lst"), "错误：没有命令 “lst”。是不是想用 “list”？", ()),
        (("tickt", "list"), "错误：没有命令 “tickt”。是不是想用 “ticket”？", ()),
        (("revisit", "due"), "错误：缺少选项 “--month”。", ()),
        (("household", "show"), "错误：缺少参数 “客户编号”。", ()),
        (("ticket", "show", "A", "B"), "错误：多出了参数：B。", ()),
        (("ticket", "list", "--limit", "0"), "“--limit” 的值无效：0 超出了允许的范围 x>=1。", ()),
        (("ticket", "list", "--limit", "abc"), "“--limit” 的值无效：“abc” 不是有效的整数。", ()),
        (
            ("ticket", "list", "--format", "xml"),
            "“--format” 的值无效：“xml” 不在可选的值中：“table”、“json”、“csv”。",
            ("table", "json", "csv", "xml"),
        ),
        (
            ("analysis", "hotspots", "--alpha", "7"),
            "“--alpha” 的值无效：7.0 超出了允许的范围 0<x<1。",
            (),
        ),
        (
            ("import", "households", "/no/such/file.csv"),
            "“文件” 的值无效：文件 “/no/such/file.csv” 不存在。",
            ("/no/such/file.csv",),
        ),
        (("ticket", "list", "--limit"), "错误：选项 “--limit” 后面要跟一个值。", ()),
        # An option with a named value (--household 客户编号) is still named by its option.
        (("ticket", "list", "--household"), "错误：选项 “--household” 后面要跟一个值。", ()),
        (("staff", "add", "张三"), "错误：缺少选项 “--team”。", ()),
        (("fund", "spend", "--activity", "x"), "“--activity” 的值无效：“x” 不是有效的整数。", ()),
        (("ticket", "list", "--overdue=yes"), "错误：选项 “--overdue” 不带值。", ("yes",)),
        (("--bogus",), "错误：没有选项 “--bogus”。", ()),
    ],
)
def test_usage_errors_are_chinese(args, expected, typed):
    result = _run(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Error" not in result.output and "Usage" not in result.output
    path = " ".join(word for word in args if not word.startswith("-"))
    allowed = (*typed, *args, path, "crm")
    assert not _english_words(result.output, allowed), result.output


def test_a_usage_error_shows_the_usage_and_where_help_is():
    result = _run("ticket", "list", "--bogus", "H1")
    assert result.output.startswith("用法：crm ticket list [选项]\n")
    assert "运行 “crm ticket list -h” 查看帮助。" in result.output
    group = _run("ticket", "lst")
    assert group.output.startswith("用法：crm ticket [选项] 命令 [参数]...\n")


def test_a_named_argument_is_shown_as_click_shows_its_own_and_errors_name_it_alone():
    from crm.cli import CrmGroup, _localise
    from crm.core.cliutil import argument

    @click.group(cls=CrmGroup)
    def root():
        pass

    @root.command()
    @argument("number", "登记号")
    @argument("tickets", "工单", nargs=-1, required=True)
    @argument("note", "说明", required=False)
    @click.option("--count", type=int)
    def link(number, tickets, note, count):
        click.echo(f"{number} {tickets} {note}")

    _localise(root)
    usage = "用法：root link [选项] 登记号 工单... [说明]"
    missing = CliRunner().invoke(root, ["link", "T1"], prog_name="root")
    assert missing.exit_code == 2
    assert missing.output.startswith(usage + "\n")
    assert "错误：缺少参数 “工单”。" in missing.output
    assert CliRunner().invoke(root, ["link", "T1", "A", "B"]).output == "T1 ('A',) B\n"


def test_a_missing_choice_lists_the_choices():
    @click.command()
    @click.option("--by", type=click.Choice(["project", "team"]), required=True)
    def command(by):
        pass

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 2
    error = click.MissingParameter(ctx=click.Context(command), param=command.params[0])
    assert clicktext.message(error) == "缺少选项 “--by”。可选：project、team。"


def test_a_group_alone_shows_its_help():
    result = _run("ticket")
    assert "用法：crm ticket [选项] 命令 [参数]..." in result.output
    assert "命令：" in result.output and "Usage" not in result.output


def test_help_extras_placeholders_and_version():
    text = _run("ticket", "list", "-h").output
    assert "[默认：100；x>=1]" in text and "[默认：table]" in text
    assert "--team 团队代码" in text and "--household 客户编号" in text
    assert "选项：" in text and "[default" not in text and "INTEGER" not in text
    required = _run("revisit", "due", "-h").output
    assert "[必填]" in required and "--output 文件" in required
    assert "--max-k 整数" in _run("analysis", "segments", "-h").output
    assert _run("--version").output.strip().startswith("crm 版本 ")


def test_end_of_input_at_a_prompt_is_cancelled_in_chinese():
    # crm's one prompt (staff add --ask-password) asks only after the database said yes to the
    # login, which takes PostgreSQL: the same prompt on a group of the root's kind
    from crm.cli import CrmGroup
    from crm.plugins.service.dispatch_commands import _ask_password

    @click.group(cls=CrmGroup)
    def root():
        pass

    @root.command()
    def ask():
        click.echo(f"密码长度 {len(_ask_password())}")

    cancelled = CliRunner().invoke(root, ["ask"], input="")
    assert cancelled.exit_code == 1
    assert "已取消。" in cancelled.output and "Aborted" not in cancelled.output
    mismatch = CliRunner().invoke(root, ["ask"], input="one\ntwo\nsame\nsame\n")
    assert "错误：两次输入的不一致，请重新输入。" in mismatch.output
    assert "do not match" not in mismatch.output and "密码长度 4" in mismatch.output

    @root.command()
    def wait():
        raise KeyboardInterrupt  # Ctrl-C

    interrupted = CliRunner().invoke(root, ["wait"])
    assert interrupted.exit_code == 130 and interrupted.output.strip() == "已中断。"


def test_one_of_our_own_errors_is_left_as_it_is():
    own = "找不到客户 H9：请检查编号。"
    assert clicktext.translate(own) == own


def _click_msgids() -> set[str]:
    """Every message click passes through gettext, read from its installed source."""
    found = set()
    for path in Path(click.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("_", "ngettext"):
                found.update(a.value for a in node.args if isinstance(a, ast.Constant))
    return found


# click's messages that never reach a crm user: mistakes in a program's own declarations,
# Windows consoles, shell completion setup, the editor and pager, colours, deprecation
# notices (no crm command is deprecated), and headings crm's formatter names itself.
NOT_FOR_USERS = {
    "Name '{name}' defined twice",
    "Could not determine name for option with declarations {decls!r}",
    (
        "No options defined but a name was passed ({name}). Did you mean to declare an argument "
        "instead? Did you mean to pass '--{name}'?"
    ),
    "Arguments take exactly one parameter declaration, got {length}: {decls}.",
    "Boolean option {decl!r} cannot use the same flag for true/false.",
    "Invalid start character for option ({option})",
    "Windows error: {error}",
    "{editor}: Editing failed",
    "{editor}: Editing failed: {e}",
    "Couldn't detect Bash version, shell completion is not supported.",
    "Shell completion is not supported for Bash versions older than 4.4.",
    "Unknown color {colour!r}",
    "Unknown standard stream '{name}'",
    "Press any key to continue...",
    "Repeat for confirmation",
    "Do you want to continue?",
    "Confirm the action without prompting.",
    "DeprecationWarning: The command {name!r} is deprecated.{extra_message}",
    "DeprecationWarning: The {param_type} {name!r} is deprecated.{extra_message}",
    "deprecated",
    "Choice({choices})",
    "d",
    # said from the exception's fields (clicktext.message), not from the text
    "Missing argument",
    "Missing option",
    "Missing parameter",
    "Missing {param_type}",
    "Choose from:\n\t{choices}",
    "Try '{command} {option}' for help.",
    "Error: {message}",
    # set by crm itself: headings (ChineseHelpFormatter), the help and version options (cli.py)
    "Usage:",
    "Options",
    "Commands",
    "Positional arguments",
    "Show this message and exit.",
    "Show the version and exit.",
    "%(prog)s, version %(version)s",
    "file",
    "directory",
    "path",
}


def test_the_catalogue_covers_every_message_click_has():
    missing = _click_msgids() - set(clicktext.MESSAGES) - NOT_FOR_USERS
    assert not missing, f"click messages with no Chinese: {sorted(missing)}"


# Field values as click passes them to format(): raw where the template says !r, already
# quoted and joined where click joins them itself.
SAMPLES = {
    "name": "--x",
    "possibility": "'--y'",
    "possibilities": "'--y', '--z'",
    "args": "a b",
    "nargs": "2",
    "param_hint": "'--x'",
    "message": "'q' is not a valid integer.",
    "value": "q",
    "choice": "'a'",
    "choices": "'a', 'b'",
    "range": "x>=1",
    "number_type": "float",
    "states": "'yes', 'no'",
    "format": "'%Y'",
    "formats": "'%Y', '%m'",
    "filename": "a.csv",
    "len": "3",
    "len_type": "2",
    "len_value": "3",
    "param_name": "code",
    "default": "table",
    "var": "CRM_X",
}


@pytest.mark.parametrize("template", sorted(clicktext.MESSAGES))
def test_every_template_reads_in_chinese(template):
    fields = dict(SAMPLES)
    if template.startswith("{name} {filename!r}"):
        fields["name"] = "File"
    english = template.format(**fields) if "{" in template else template
    chinese = clicktext.translate(english)
    assert chinese != english
    assert re.search(r"[\u4e00-\u9fff]", chinese), chinese
    # left in English: the sample default ("table"), variable name and "UUID"
    assert set(_english_words(chinese)) <= {"CRM", "UUID", "table"}, chinese
