"""Meta-tests over the whole CLI and the hook contract."""

import inspect
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from crm.cli import cli
from crm.core import hookspecs


def _all_commands(group: click.Group, path=()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*path, name))


COMMANDS = list(_all_commands(cli))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "用法：" in result.output
    command = dict(COMMANDS)[path]
    assert command.help, f"crm {' '.join(path)} has no docstring"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"crm {' '.join(path)} {param.opts} has no help text"


def _option_terms(help_text: str) -> list[str]:
    """Each option's term in a help's option list (`--household 客户编号`): its names and
    placeholder, before the gap to its help; its help's later lines are indented."""
    lines = help_text.splitlines()
    if "选项：" not in lines:
        return []
    options = lines[lines.index("选项：") + 1 :]
    options = options[: options.index("")] if "" in options else options
    return [re.split(r"\s{2,}", line.strip())[0] for line in options if line.startswith("  -")]


def _english_placeholders(help_text: str) -> list[str]:
    """ASCII words in capitals (CODE, NUMBER, TEXT, URL) in a help's usage line and in the
    placeholders of its option list: what click shows for an argument or option that has no
    Chinese name. Option names and the codes of a choice ([csv|xlsx]) are what users type and
    are left out."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("用法："))
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    shown = lines[start:end] + _option_terms(help_text)
    found = []
    for line in shown:
        line = re.sub(r"(?<!\S)--?[\w-]+", " ", line)  # option names
        line = re.sub(r"[\[{][^\]}]*\|[^\]}]*[\]}]", " ", line)  # a choice's codes
        found += [word for word in re.findall(r"[A-Za-z_]+", line) if word.isupper()]
    return found


_OPTION_NAME = r"(?<!\S)--?[\w-]+"


def _bare_text_options(help_text: str) -> list[str]:
    """The options (by their last, long name) whose placeholder is click's generic 文本, its
    TEXT in Chinese: shown so, `--household 文本` says nothing of what goes there."""
    found = []
    for term in _option_terms(help_text):
        if re.search(r"(?<!\w)文本(?!\w)", re.sub(_OPTION_NAME, " ", term)):
            found.append(re.findall(_OPTION_NAME, term)[-1])
    return found


# Options whose value is genuinely free text and may keep click's bare 文本, as
# {("ticket open", "--summary"): "why"}. None needs it now: free text says 文字, and a code or
# a name says which (客户编号, 项目名称, 登记号, 团队代码); an option lands here only with a reason.
BARE_TEXT_ALLOWED: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("path", [(), *(p for p, _ in COMMANDS)], ids=" ".join)
def test_every_placeholder_in_usage_and_options_is_chinese(path):
    # Issue 12: arguments and option values are named in Chinese (登记号, 客户编号, 日期), and
    # by what goes there: an option's value is not just 文本.
    text = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80).output
    assert _english_placeholders(text) == [], text
    bare = [
        name for name in _bare_text_options(text) if (" ".join(path), name) not in BARE_TEXT_ALLOWED
    ]
    assert bare == [], text


def test_the_placeholder_check_sees_english_ones():
    from crm.cli import _localise

    @click.group()
    def root():
        pass

    @root.command()
    @click.argument("code")
    @click.argument("tickets", nargs=-1)
    @click.option("-C", "--interval", type=float, metavar="SECONDS", help="间隔。")
    @click.option("--kind", type=click.Choice(["CSV", "xlsx"]), help="格式。")
    @click.option("--limit", type=int, help="条数。")
    @click.option("-p", "--project", help="项目。")
    @click.option("--tags", nargs=2, help="标签。")
    @click.option("--encoding", metavar="字符编码", help="文本编码。")
    def planted(code, tickets, interval, kind, limit, project, tags, encoding):
        """占位。"""

    _localise(root)
    text = CliRunner().invoke(root, ["planted", "--help"]).output
    assert _english_placeholders(text) == ["CODE", "TICKETS", "SECONDS"], text
    # click's TEXT, once or per value, whatever the option's names; not 文本 in a word or a help
    assert _bare_text_options(text) == ["--project", "--tags"], text


def test_root_help_lists_the_core_groups():
    result = CliRunner().invoke(cli, ["--help"])
    for name in ("init", "db", "plugins", "audit", "household", "import", "export", "demo"):
        assert name in result.output


def test_every_listing_offers_the_shared_formats():
    # Every output offers table and JSON; every listing (all but the one-record `show`) CSV too.
    checked = 0
    for path, command in COMMANDS:
        for param in command.params:
            if param.name == "fmt" and "--format" in param.opts:
                wanted = {"table", "json"} if path[-1] == "show" else {"table", "json", "csv"}
                assert set(param.type.choices) >= wanted, path
                checked += 1
    assert checked >= 3


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from crm.cli import cli\n"
        "try:\n"
        "    cli.main(['--help'], prog_name='crm')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('sklearn', 'pandas', 'matplotlib', 'sqlalchemy', 'scipy', "
        "'apscheduler', 'openpyxl', 'faker', 'marshmallow') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout


def test_every_hookspec_has_a_docstring():
    specs = [
        f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "crm_spec")
    ]
    assert len(specs) >= 5
    for spec in specs:
        assert spec.__doc__ and spec.__doc__.strip(), spec.__name__


def test_bad_input_is_one_sentence_without_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path}/none.db", "audit", "list"])
    assert result.exit_code != 0
    assert "crm init" in result.output
    assert "Traceback" not in result.output


AFTER_SALES_GROUPS = (
    "ticket",
    "sla",
    "team",
    "staff",
    "workorder",
    "repair",
    "club",
    "activity",
    "survey",
    "satisfaction",
)


def test_every_after_sales_command_offers_json():
    # Issue 3: every command of the service and satisfaction plugins answers in JSON too.
    groups = dict(cli.commands)
    missing = [name for name in AFTER_SALES_GROUPS if name not in groups]
    assert not missing, f"groups not registered: {missing}"
    checked, lacking = 0, []
    for name in AFTER_SALES_GROUPS:
        for path, command in _all_commands(groups[name], (name,)):
            if isinstance(command, click.Group):
                continue
            checked += 1
            fmt = [p for p in command.params if "--format" in getattr(p, "opts", ())]
            if not fmt or "json" not in fmt[0].type.choices:
                lacking.append(" ".join(path))
    assert checked >= 40
    assert not lacking, f"commands without --format json: {lacking}"
