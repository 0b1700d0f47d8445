"""Import under attack: values the database cannot hold, broken CSV, keys given twice, XLSX
bombs, legacy encodings and concurrent imports. Each case is a defect once seen (issue 10):
every row is imported or rejected with its line, column and a reason; nothing raises."""

from __future__ import annotations

import threading
import zipfile
from decimal import Decimal

import openpyxl
import pytest
from sqlalchemy import func, select

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.importing import (
    XLSX_MAX_MB_KEY,
    XLSX_MAX_ROWS_KEY,
    import_file,
    import_limits,
    set_import_limit,
)
from crm.core.models import AuditEntry, Household, Purchase, ServiceRecord
from tests.test_import import rejects, write


def import_ok(app, kind: str, path, **options):
    with app.session() as session, transaction(session):
        return import_file(session, kind, path, **options)


def codes(app) -> dict[str, Household]:
    with app.session() as session:
        return {h.code: h for h in session.scalars(select(Household))}


def count(app, model) -> int:
    with app.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def two_households(app, tmp_path):
    import_ok(app, "households", write(tmp_path / "h.csv", "code,name\nH1,甲\nH2,乙\n"))


def test_amounts_past_the_column_are_rejected_not_a_traceback(app, two_households, tmp_path):
    """1e30 raised decimal.InvalidOperation; on PostgreSQL 1e12 overflowed NUMERIC(14,2)."""
    source = write(
        tmp_path / "p.csv",
        "contract_no,household_code,purchase_date,amount,floor_area\n"
        "C1,H1,2024-01-05,1e30,\n"  # 2
        "C2,H1,2024-01-05,1000000000000,\n"  # 3: 1e12, one past the column
        "C3,H1,2024-01-05,999999999999.99,89.5\n"  # 4: the largest amount: lands
        "C4,H1,2024-01-05,1e999999999,\n"  # 5: past the decimal context
        "C5,H1,2024-01-05,100000000万,\n"  # 6: 万 makes it too large
        "C6,H2,2024-01-05,100,100000000\n"  # 7: area past NUMERIC(10,2)
        "C7,H2,2024-01-05,999999999999.995,\n"  # 8: rounds up past the column
        "C8,H2,2024-01-05,-1e30,\n"  # 9
        "C9,H2,2024-01-05,NaN,\n",  # 10
    )
    result = import_ok(app, "purchases", source)
    assert (result.inserted, result.rejected) == (1, 8)
    lines = {int(line): (column, reason) for line, column, reason in rejects(result.rejects_path)}
    assert sorted(lines) == [2, 3, 5, 6, 7, 8, 9, 10]
    assert lines[7][0] == "floor_area" and "面积过大" in lines[7][1]
    for line in (2, 3, 6, 8):
        assert lines[line] == ("amount", "金额过大：应小于 1,000,000,000,000"), line
    assert lines[5][0] == "amount" and "不是有效的金额" in lines[5][1]
    assert "非负数" in lines[9][1] and "非负数" in lines[10][1]
    with app.session() as session:
        stored = session.scalar(select(Purchase.amount).where(Purchase.contract_no == "C3"))
    assert stored == Decimal("999999999999.99")


def test_cells_longer_than_the_column_are_rejected(app, run, tmp_path):
    """A cell over 131,072 characters raised _csv.Error; others went to the database as is."""
    source = write(
        tmp_path / "h.csv",
        "code,name,note\n"
        f"H1,{'长' * 200_000},\n"  # 2: past the CSV reader's cell limit
        f"H2,{'名' * 101},\n"  # 3: name is VARCHAR(100)
        f"H3,丙,{'注' * 10_001}\n"  # 4: free text is capped at 10,000
        f"{'X' * 41},丁,\n"  # 5: code is VARCHAR(40)
        f"H5,戊,{'注' * 10_000}\n",  # 6: exactly the cap: lands
    )
    result = run("import", "households", str(source))
    assert result.exit_code == 0, result.output
    assert "新增 1" in result.stderr and "拒绝 4" in result.stderr
    lines = rejects(tmp_path / "h.csv.rejects.csv")
    assert lines == [
        ["2", "", "有单元格超过 131,072 个字符"],
        ["3", "name", "不能超过 100 个字符"],
        ["4", "note", "不能超过 10000 个字符"],
        ["5", "code", "不能超过 40 个字符"],
    ]
    assert list(codes(app)) == ["H5"]


def test_control_characters_are_refused_cell_by_cell(app, tmp_path):
    """On PostgreSQL one NUL byte in any cell made the whole file fail; ESC sequences were
    stored and later sent to terminals."""
    source = write(
        tmp_path / "h.csv",
        "code,name,project,note\n"
        "H1,张\x00伟,,\n"  # 2: NUL
        "H2,李娜,\x1b[31m万科城,\n"  # 3: ESC in a one-line field
        "H3,王\t芳,,\n"  # 4: tab in a name
        'H4,赵敏,,"第一行\r\n第二行\t缩进"\n'  # 5: a note may run over lines: lands
        'H5,钱多,,"注\x00释"\n'  # 7: NUL in a note
        "H6,孙\x9b31m,,\n"  # 8: a C1 control (CSI)
        "H7,周\x7f,,\n",  # 9: DEL
    )
    result = import_ok(app, "households", source)
    assert (result.inserted, result.rejected) == (1, 6)
    lines = rejects(result.rejects_path)
    assert [(line, column) for line, column, _ in lines] == [
        ("2", "name"),
        ("3", "project"),
        ("4", "name"),
        ("7", "note"),
        ("8", "name"),
        ("9", "name"),
    ]
    reasons = [reason for _, _, reason in lines]
    assert reasons[0] == "含有控制字符或无效字符 U+0000，请删去后重新导入"
    assert "U+001B" in reasons[1] and "U+0009" in reasons[2] and "U+009B" in reasons[4]
    assert codes(app)["H4"].note == "第一行\r\n第二行\t缩进"


def test_jsonl_lone_surrogates_and_odd_values(app, tmp_path):
    r"""JSON can carry "\ud800", which neither SQLite nor PostgreSQL can store as UTF-8."""
    source = write(
        tmp_path / "h.jsonl",
        '{"code": "H1", "name": "\\ud800x", "age": null}\n'
        '{"code": "H2", "name": "乙", "age": 1e400}\n'
        '{"code": "H3", "name": "丙", "age": 12345678901234567890}\n'
        '{"code": "H4", "name": ["丁"], "age": true}\n'
        '{"code": "H5", "name": "戊", "age": "' + "9" * 5000 + '"}\n'
        '{"code": "H6", "name": "己", "age": 30}\n',
    )
    result = import_ok(app, "households", source)
    assert (result.inserted, result.rejected) == (1, 5)
    lines = rejects(result.rejects_path)
    assert [(line, column) for line, column, _ in lines] == [
        ("1", "name"),
        ("2", "age"),
        ("3", "age"),
        ("4", "age"),
        ("5", "age"),
    ]
    assert "U+D800" in lines[0][2] and "超出范围" in lines[2][2]
    # every reason is a Chinese sentence, none is Python's English message
    assert all(not reason.isascii() for _, _, reason in lines)
    assert "不是整数" in lines[4][2] and len(lines[4][2]) < 100
    assert list(codes(app)) == ["H6"]


def test_times_outside_any_calendar_are_rejected_in_chinese(app, two_households, tmp_path):
    """A +99:00 offset raised Python's English ValueError; year 9999 at +14:00 overflowed."""
    source = write(
        tmp_path / "s.csv",
        "record_no,household_code,kind,opened_at,summary\n"
        "S1,H1,repair,2024-03-05 10:00+99:00,漏水\n"
        "S2,H1,repair,9999-12-31 23:59 -14:00,漏水\n"
        "S3,H1,repair,0001-01-01,漏水\n"
        "S4,H1,repair,2024-03-05 10:00+08:00,漏水\n",
    )
    result = import_ok(app, "service", source)
    assert (result.inserted, result.rejected) == (1, 3)
    lines = rejects(result.rejects_path)
    assert [(line, column) for line, column, _ in lines] == [
        ("2", "opened_at"),
        ("3", "opened_at"),
        ("4", "opened_at"),
    ]
    assert "时区偏移无效" in lines[0][2] and "超出合理范围" in lines[1][2]
    assert count(app, ServiceRecord) == 1


def test_a_truncated_last_line_is_rejected(app, tmp_path):
    """An unclosed quote at the end of the file used to close itself quietly."""
    source = write(tmp_path / "h.csv", 'code,name,note\nH1,甲,完整\nH2,乙,"被截断的备')
    result = import_ok(app, "households", source)
    assert (result.inserted, result.rejected) == (1, 1)
    assert rejects(result.rejects_path) == [
        ["3", "", "文件在引号内结束：最后一行不完整（引号没有闭合），文件可能被截断"]
    ]
    assert list(codes(app)) == ["H1"]


def test_a_stray_quote_rejects_its_line_and_reading_goes_on(app, tmp_path):
    source = write(tmp_path / "h.csv", 'code,name\nH1,"甲"乙\nH2,丙\n')
    result = import_ok(app, "households", source)
    assert (result.inserted, result.rejected) == (1, 1)
    [(line, column, reason)] = rejects(result.rejects_path)
    assert (line, column) == ("2", "") and "引号" in reason
    assert list(codes(app)) == ["H2"]


def test_a_key_after_its_rejected_first_row_is_rejected_too(app, tmp_path):
    """The first row with H1 was rejected for its age; the second row with H1 was then
    inserted as if it were the only one."""
    source = write(
        tmp_path / "h.csv",
        "code,name,age\nH1,甲,abc\nH2,乙,30\nH1,丙,40\nＨ1,丁,50\n",  # full-width Ｈ1 is H1
    )
    result = import_ok(app, "households", source, chunk_size=1)
    assert (result.inserted, result.rejected) == (1, 3)
    lines = rejects(result.rejects_path)
    assert lines[0][:2] == ["2", "age"]
    assert [line[:2] for line in lines[1:]] == [["4", "code"], ["5", "code"]]
    assert all("首次在第 2 行" in line[2] for line in lines[1:])
    assert list(codes(app)) == ["H2"]


TRICKY_CSV = (
    "code,name,note\r\n"
    'H1,甲,"两\r\n行"\r\n'  # 2-3: a cell over two lines
    "\r\n"  # 4: empty
    ",,\n"  # 5: cells all empty
    'H2,"甲"乙,\n'  # 6: a stray quote
    "H3\n"  # 7: short
    "\n"  # 8
    'H4,丁,"三\r行\n之多"\r'  # 9-11: bare CR and LF inside, bare CR at the end
    "H5,戊,\n"  # 12
    ",己,\n"  # 13: no key
    'H6,庚,"没有闭合'  # 14: truncated
)


@pytest.mark.parametrize("size", [1, 2, 5000])
@pytest.mark.parametrize("positions", [(0,), (1,), (0, 1)])
def test_the_first_pass_reads_the_keys_of_the_records_the_second_reads(tmp_path, size, positions):
    """The first pass has its own CSV loop (no generator step per row): it must see the
    same records, on the same lines, as the second."""
    from operator import itemgetter

    from crm.core.importing import _key_cells, open_source

    source_path = write(tmp_path / "h.csv", TRICKY_CSV)
    pick = itemgetter(*positions)
    with open_source(source_path, "csv") as source:
        fast = [
            pair for cells, lines in source.key_batches(pick, size) for pair in zip(cells, lines)
        ]
    with open_source(source_path, "csv") as source:
        plain = [
            pair
            for cells, lines in _key_cells(source.records, pick, size)
            for pair in zip(cells, lines)
        ]
    assert fast == plain
    if positions == (0,):
        assert [line for _, line in fast] == [2, 7, 9, 12, 13]


def test_keys_repeated_after_odd_lines_name_the_first_line(app, tmp_path):
    text = TRICKY_CSV.replace('H6,庚,"没有闭合', "H4,辛,\nH1,壬,")  # 14, 15
    result = import_ok(app, "households", write(tmp_path / "h.csv", text), chunk_size=2)
    lines = {line: (column, reason) for line, column, reason in rejects(result.rejects_path)}
    assert sorted(map(int, lines)) == [2, 6, 7, 9, 13, 14, 15]
    assert "首次在第 2 行" in lines["2"][1] and "首次在第 2 行" in lines["15"][1]
    assert "首次在第 9 行" in lines["9"][1] and "首次在第 9 行" in lines["14"][1]
    assert list(codes(app)) == ["H5"]


def test_member_keys_twice_in_one_file(app, two_households, tmp_path):
    source = write(
        tmp_path / "m.csv",
        "household_code,name,phone\nH1,张伟,13812345678\nH2,张伟,\nH1, 张伟 ,13900000000\n",
    )
    result = import_ok(app, "members", source)
    assert (result.inserted, result.rejected) == (1, 2)
    lines = rejects(result.rejects_path)
    assert [line[:2] for line in lines] == [
        ["2", "household_code+name"],
        ["4", "household_code+name"],
    ]
    assert "首次在第 2 行" in lines[1][2]


def test_gbk_file_whose_first_64_kb_are_ascii(app, tmp_path):
    """Only the first 64 KB were sniffed: the file was refused as "not utf-8"."""
    head = "code,name\r\n" + "".join(f"A{i:05d},Zhang Wei\r\n" for i in range(6000))
    assert len(head) > 1 << 16
    source = write(tmp_path / "legacy.csv", head + "H1,张伟\r\n", "gbk")
    result = import_ok(app, "households", source)
    assert (result.inserted, result.rejected) == (6001, 0)
    assert codes(app)["H1"].name == "张伟"


def test_bytes_of_no_encoding_are_refused_with_the_line(app, run, tmp_path):
    source = tmp_path / "h.csv"
    source.write_bytes(b"code,name\nH1,a\nH2,b\x80\xff\xfe\n")
    result = run("import", "households", str(source))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "第 3 行附近含有不是 gb18030 编码的字节" in result.stderr
    assert count(app, Household) == 0


def _workbook(path, rows: list[list], header=("code", "name", "note")) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(row)
    book.save(path)


def _set_limit(app, key: str, value: str) -> None:
    with app.session() as session, transaction(session):
        set_import_limit(session, key, value)


def test_xlsx_that_unpacks_past_the_limit_is_refused_before_parsing(app, run, tmp_path):
    """A 10 MB XLSX that unpacked to 134 MB took 31-56 s and 440 MB; the limit is a setting."""
    path = tmp_path / "bomb.xlsx"
    _workbook(path, [[f"H{i}", "甲", f"{i}" + "a" * 1000] for i in range(3000)])
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    assert unpacked > 3_000_000 and path.stat().st_size < 1_000_000
    _set_limit(app, XLSX_MAX_MB_KEY, "2")
    result = run("import", "households", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output
    expected = (
        f"解压后有 {unpacked / 1_000_000:.0f} MB，超过导入上限 2 MB（设置 import.xlsx_max_mb）"
    )
    assert expected in result.stderr
    assert count(app, Household) == 0
    _set_limit(app, XLSX_MAX_MB_KEY, "5")
    assert run("import", "households", str(path)).exit_code == 0
    assert count(app, Household) == 3000


def test_xlsx_past_the_row_limit_is_refused_before_any_write(app, run, tmp_path):
    path = tmp_path / "rows.xlsx"
    _workbook(path, [[f"H{i}", "甲", None] for i in range(6)])
    _set_limit(app, XLSX_MAX_ROWS_KEY, "5")
    result = run("import", "households", str(path))
    assert result.exit_code == 1
    assert "超过 5 行（设置 import.xlsx_max_rows）" in result.stderr
    assert count(app, Household) == 0
    with app.session() as session:
        assert import_limits(session).xlsx_max_rows == 5
        entries = session.scalars(select(AuditEntry).where(AuditEntry.entity == "settings"))
        assert [e.entity_id for e in entries] == [XLSX_MAX_ROWS_KEY]
    _set_limit(app, XLSX_MAX_ROWS_KEY, "6")
    assert run("import", "households", str(path)).exit_code == 0
    assert count(app, Household) == 6


def test_import_limits_must_be_positive_integers(app):
    with app.session() as session:
        with pytest.raises(CrmError, match="应为 1 到"):
            set_import_limit(session, XLSX_MAX_ROWS_KEY, "lots")
        with pytest.raises(CrmError, match="没有导入设置"):
            set_import_limit(session, "import.anything", "1")


def test_xlsx_cells_are_checked_like_csv_cells(app, tmp_path):
    path = tmp_path / "h.xlsx"
    _workbook(
        path,
        [
            ["H1", "甲", "多行\n备注"],
            ["H2", 12345, None],  # a number where text is expected: its text
            ["H3", "乙" * 101, None],
            ["H4", "丙", "注" * 10_001],
        ],
    )
    book = openpyxl.load_workbook(path)
    book.active.cell(row=2, column=5000, value="far right, under no header")
    book.save(path)
    result = import_ok(app, "households", path)
    assert (result.inserted, result.rejected) == (2, 2)
    assert [line[:2] for line in rejects(result.rejects_path)] == [["4", "name"], ["5", "note"]]
    assert codes(app)["H2"].name == "12345"


def test_concurrent_imports_of_the_same_keys_wait_for_each_other(app, tmp_path):
    """SQLite: the second import failed with "database is locked" after 0.7 s instead of
    waiting. PostgreSQL: it inserted the same keys and failed with an IntegrityError."""
    source = write(tmp_path / "h.csv", "code,name\nH1,甲\nH2,乙\nH3,丙\nH4,丁\n")
    first_wrote, second_started = threading.Event(), threading.Event()
    results, errors = {}, []

    def pause(_bytes: int) -> None:
        # After the first chunk is written, hold the transaction open while the second
        # import starts.
        if not first_wrote.is_set():
            first_wrote.set()
            second_started.wait(10)
            threading.Event().wait(1.0)

    def importer(name: str, progress) -> None:
        try:
            results[name] = import_ok(app, "households", source, chunk_size=2, progress=progress)
        except Exception as exc:  # noqa: BLE001 - the failure is what this test reports
            errors.append(exc)
            first_wrote.set()

    first = threading.Thread(target=importer, args=("first", pause))
    first.start()
    assert first_wrote.wait(10)
    second = threading.Thread(target=importer, args=("second", None))
    second.start()
    second_started.set()
    first.join(30)
    second.join(30)
    assert errors == []
    assert results["first"].inserted == 4
    assert (results["second"].inserted, results["second"].unchanged) == (0, 4)
    assert sorted(codes(app)) == ["H1", "H2", "H3", "H4"]


def test_import_limits_command_lists_and_changes_them(app, run):
    listed = run("import", "limits", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert '"key": "import.xlsx_max_rows"' in listed.stdout and '"value": 200000' in listed.stdout
    refused = run("import", "limits", XLSX_MAX_ROWS_KEY, "5", as_="李娜:sales")
    assert refused.exit_code != 0 and "修改导入上限" in refused.stderr
    changed = run("import", "limits", XLSX_MAX_ROWS_KEY, "5", as_="王芳:manager")
    assert changed.exit_code == 0, changed.output
    with app.session() as session:
        assert import_limits(session).xlsx_max_rows == 5
    half = run("import", "limits", XLSX_MAX_ROWS_KEY)
    assert half.exit_code == 1 and "请同时给出设置项和新值" in half.stderr


def _raw_xlsx(path, rows: list[list[str]], dimension: str | None) -> None:
    """A minimal XLSX written by hand: inline strings, and a <dimension> only if given (a
    missing one made openpyxl parse the whole sheet before the first row)."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    types = "http://schemas.openxmlformats.org/package/2006/content-types"
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    book_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    cells = "".join(
        f'<row r="{r}">'
        + "".join(
            f'<c r="{chr(65 + c)}{r}" t="inlineStr"><is><t>{text}</t></is></c>'
            for c, text in enumerate(row)
        )
        + "</row>"
        for r, row in enumerate(rows, 1)
    )
    size = f'<dimension ref="{dimension}"/>' if dimension else ""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            f'<Types xmlns="{types}"><Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
            'ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
            f'ContentType="{book_type}"/><Override PartName="/xl/worksheets/sheet1.xml" '
            f'ContentType="{sheet_type}"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{rels}"><Relationship Id="rId1" '
            f'Type="{office}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{main}" xmlns:r="{office}"><sheets><sheet name="S" '
            'sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{rels}"><Relationship Id="rId1" '
            f'Type="{office}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<worksheet xmlns="{main}">{size}<sheetData>{cells}</sheetData></worksheet>',
        )


@pytest.mark.parametrize("dimension", [None, "A1:XFD1048576"])
def test_xlsx_without_or_with_a_forged_dimension(app, tmp_path, dimension):
    path = tmp_path / "hand.xlsx"
    _raw_xlsx(path, [["code", "name"], ["H1", "甲"], ["H2", "乙"]], dimension)
    result = import_ok(app, "households", path)
    assert (result.inserted, result.rejected) == (2, 0)
    assert sorted(codes(app)) == ["H1", "H2"]
