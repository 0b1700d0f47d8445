"""`crm shell`: typed lines run as on the command line, in one process with one App."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

import crm.core.app
from crm.cli import State, cli
from crm.commands.desk import Desk
from crm.commands.prompt import DeskCompleter

ADMIN = "测试管理员:admin"


def _open_ticket(code: str) -> list[str]:
    return [
        "ticket", "open", code, "--type", "enquiry", "--channel", "phone",
        "--summary", "咨询 交房时间", "--format", "json",
    ]  # fmt: skip


def _line(args: list[str]) -> str:
    import shlex

    return shlex.join(args)


def test_piped_session_writes_reads_and_errors_like_the_command_line(app, run, db_url):
    # A write, then reads of it, in one session: each line sees the lines before it.
    session = run(
        "shell",
        input=(
            "household add HS1 --name '测试 家' --owner-name 张三\n"
            "# a comment, then a blank line\n\n"
            f"crm {_line(_open_ticket('HS1'))}\n"
            "household show HS1 --format json\n"
        ),
    )
    assert session.exit_code == 0, session.output
    added, rest = session.stdout.split("\n", 1)
    assert added.startswith("已新增客户家庭 HS1（测试 家）")  # quoted as a shell would
    ticket, end = json.JSONDecoder().raw_decode(rest)
    card = json.loads(rest[end:])
    assert card["code"] == "HS1" and ticket["number"] in json.dumps(card, ensure_ascii=False)

    # Reads and errors: the same output, errors and exit codes as one process per command.
    commands = [
        ["household", "show", "HS1"],
        ["household", "show", "NOPE"],  # a CrmError
        ["household", "nope"],  # a click usage error
        ["household", "list", "--limit", "x"],  # a bad option value
        ["household", "list"],
    ]
    runner = CliRunner()
    alone = [
        runner.invoke(cli, ["--db", db_url, "--as", ADMIN, *args], prog_name="crm")
        for args in commands
    ]
    together = run("shell", input="".join(_line(args) + "\n" for args in commands))
    assert together.stdout == "".join(result.stdout for result in alone)
    assert together.stderr == "".join(result.stderr for result in alone)
    assert together.exit_code == 0  # the last command's
    codes = [result.exit_code for result in alone]
    assert codes == [0, 4, 2, 2, 0] and alone[1].stderr.startswith("错误：")
    desk = Desk(cli, State(db_url, ADMIN))
    try:
        assert [desk.run(_line(args)) for args in commands] == codes
    finally:
        desk.close()

    # -e stops at the first failure with its code; exit leaves; an unclosed quote is refused.
    stopped = run("shell", "-e", input="household show NOPE\nhousehold list\n")
    assert stopped.exit_code == 4 and stopped.stdout == ""
    left = run("shell", input="shell\n'unclosed\nexit\nhousehold list\n")
    assert left.exit_code == 2 and left.stdout == ""
    assert left.stderr == (
        "错误：已在 crm 工作台中：直接输入命令即可，exit 退出。\n"
        "错误：这一行引号不成对：请检查引号后重新输入。\n"
    )


def test_the_session_builds_one_app(app, run, monkeypatch):
    made = []
    original = crm.core.app.App.__init__

    def counting(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(crm.core.app.App, "__init__", counting)
    result = run(
        "shell",
        input="household add HS2 --name 乙家\nhousehold show HS2\nhousehold list\nplugins\n",
    )
    assert result.exit_code == 0, result.output
    assert len(made) == 1
    # A line with its own --as runs as that user in an App of its own; the session's stays.
    result = run(
        "shell",
        input="--as 王经理:manager audit list --format json\nhousehold list\naudit list\n",
    )
    assert result.exit_code == 0, result.output
    assert len(made) == 3
    assert '"actor": "测试管理员"' in result.stdout  # the manager read the admin's entries


def test_each_command_sees_the_clock_and_the_writes_before_it(app, db_url, time_machine, capsys):
    """Nothing of one command stays for the next: no open transaction or connection, no time
    read when the session started."""
    time_machine.move_to(dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC), tick=False)
    desk = Desk(cli, State(db_url, ADMIN))
    own = desk.state.app
    try:
        assert desk.run("household add HS3 --name 丙家") == 0
        assert own.engine.pool.checkedout() == 0
        time_machine.shift(dt.timedelta(days=3))
        assert desk.run("household update HS3 --note 三天后") == 0
        assert own.engine.pool.checkedout() == 0
        capsys.readouterr()
        assert desk.run("audit list --entity households --format json") == 0
        entries = json.loads(capsys.readouterr().out)
        assert desk.state.app is own
    finally:
        desk.close()
    times = sorted(entry["at"] for entry in entries)
    assert times[0].startswith("2026-12-02") and times[-1].startswith("2026-12-05")


def _completions(desk: Desk, text: str) -> dict[str, str]:
    found = DeskCompleter(desk).get_completions(Document(text), CompleteEvent())
    return {c.text: c.display_meta_text for c in found}


def test_completion_of_commands_options_codes_and_ticket_numbers(app, db_url, capsys):
    desk = Desk(cli, State(db_url, ADMIN))
    try:
        assert desk.run("household add HC1 --name 甲家") == 0
        assert desk.run("household add HC2 --name 乙家") == 0
        capsys.readouterr()
        assert desk.run(_line(_open_ticket("HC2"))) == 0
        number = json.loads(capsys.readouterr().out)["number"]

        assert {"household", "ticket", "exit"} <= set(_completions(desk, ""))
        assert set(_completions(desk, "hou")) == {"household"}
        assert "show" in _completions(desk, "household ")
        assert "--format" in _completions(desk, "household show HC1 --f")
        assert set(_completions(desk, "household list --format ")) == {"table", "json", "csv"}
        # Household codes (any case) where a code goes, labelled; ticket numbers likewise.
        assert _completions(desk, "household show hc") == {"HC1": "客户编号", "HC2": "客户编号"}
        assert _completions(desk, f"crm ticket show {number[:-2]}") == {number: "登记号"}
        # An option naming a household is offered codes; free text and a ticket's place none.
        assert _completions(desk, "ticket list --household hc") == {
            "HC1": "客户编号",
            "HC2": "客户编号",
        }
        assert _completions(desk, "ticket open HC2 --type enquiry --summary HC") == {}
        assert _completions(desk, "ticket show HC") == {}
        assert _completions(desk, "household show ") == {}  # nothing typed: no list of all
        # Refreshed after a write: a household added now is offered at once.
        assert desk.run("household add HC3 --name 丙家") == 0
        assert "HC3" in _completions(desk, "household show HC")
        # `help [COMMAND]` is the command's -h.
        capsys.readouterr()
        assert desk.run("help household") == 0
        helped = capsys.readouterr().out
        assert desk.run("household -h") == 0
        assert capsys.readouterr().out == helped and "用法：crm household" in helped
    finally:
        desk.close()


def test_completion_is_bounded(app, db_url, monkeypatch, capsys):
    import crm.commands.desk as desk_module

    monkeypatch.setattr(desk_module, "IDENTIFIER_LIMIT", 1)
    desk = Desk(cli, State(db_url, ADMIN))
    try:
        for code in ("HB1", "HB2", "HB3"):
            assert desk.run(f"household add {code} --name 家") == 0
        assert _completions(desk, "household show HB") == {"HB3": "客户编号"}  # the newest
    finally:
        desk.close()


def test_history_is_kept_in_the_data_dir_for_its_owner_only(tmp_path):
    from crm.commands.prompt import history_file

    path = history_file()
    assert path == tmp_path / "home" / "shell_history"  # CRM_HOME (conftest)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_a_key_rotated_in_the_session_is_used_by_the_next_command(app, run, tmp_path, monkeypatch):
    from crm.core.keys import write_key_file
    from tests.conftest import TEST_KEY

    path = tmp_path / "keys" / "secret.key"
    write_key_file(path, TEST_KEY)
    monkeypatch.delenv("CRM_SECRET_KEY")
    monkeypatch.setenv("CRM_KEY_FILE", str(path))
    result = run(
        "shell",
        input=(
            "household add KR1 --name 甲家 --owner-name 张三 --phone 13900000001\n"
            "key rotate\n"
            "household add KR2 --name 乙家 --owner-name 李四 --phone 13900000002\n"
        ),
    )
    assert result.exit_code == 0, result.output
    assert path.read_text().strip() != TEST_KEY
    # Sealed and hashed with the new key, so a new process with that key finds both.
    for phone, code in (("13900000001", "KR1"), ("13900000002", "KR2")):
        found = run("household", "search", "--phone", phone, "--format", "json")
        assert [row["code"] for row in json.loads(found.stdout)] == [code], found.output
