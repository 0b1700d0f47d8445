"""Bulk export: masking per role, audit of full views, formats, and the export/import round
trip."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select

from crm.core.identity import id_check_digit
from crm.core.models import AuditEntry

ID_NUMBER = "11010519800101001" + id_check_digit("11010519800101001")
FILES = {
    "households": "code,name,status,project,age,income_band,consent_marketing,note\n"
    "H001,张伟,prospective,万科城,35,300k_500k,true,老客户\n"
    "H002,李娜,prospective,,,,false,\n",
    "members": "household_code,name,role,phone,alt_phone,id_number\n"
    f"H001,张伟,owner,13812345678,010-87654321,{ID_NUMBER}\n"
    "H002,李娜,owner,13900001111,,\n",
    "purchases": "contract_no,household_code,project,building,unit,purchase_date,floor_area,"
    "amount,channel,referrer_code,promotions_attended,handover_date\n"
    "C-1,H001,万科城,12,12-1A,2024-03-05,89.5,1234567,walk_in,,2,2024-12-01\n"
    "C-2,H002,万科城,12,1903,2024-04-01,,3568000,referral,H001,,\n",
    "service": "record_no,household_code,kind,channel,status,opened_at,closed_at,summary,result,"
    "project,building,unit\n"
    "S-1,H001,complaint,phone,closed,2024-03-05 09:30,2024-03-05 10:00,漏水,已修复,万科城,12,12-1A\n"
    "S-2,H002,repair,,,2024-03-06,,门锁坏,,,,\n",
}


@pytest.fixture
def loaded(app, run, tmp_path):
    for kind, text in FILES.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        result = run("import", kind, str(path))
        assert result.exit_code == 0 and "拒绝 0" in result.stderr, result.output
    return app


def exports(app) -> list[AuditEntry]:
    with app.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "export")))


@pytest.mark.parametrize(
    ("role", "phone", "id_number", "full"),
    [
        ("agent", "138****5678", "110105********" + ID_NUMBER[-4:], False),
        ("analyst", "138****5678", "110105********" + ID_NUMBER[-4:], False),
        ("manager", "13812345678", ID_NUMBER, True),
    ],
)
def test_members_are_masked_unless_the_role_sees_personal_data(
    loaded, run, role, phone, id_number, full
):
    result = run("export", "members", as_=f"某人:{role}")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["户号"] == "H001" and rows[0]["身份"] == "业主"
    assert rows[0]["手机"] == phone and rows[0]["身份证号"] == id_number
    (entry,) = exports(loaded)
    assert entry.actor == "某人" and entry.entity == "members"
    assert ("完整个人信息 2 人" in entry.detail) is full
    assert ("13812345678" in (entry.detail or "")) is False


def test_households_in_chinese_by_default_and_english_on_request(loaded, run):
    zh = list(csv.reader(io.StringIO(run("export", "households").stdout)))
    assert zh[0][:3] == ["户号", "姓名", "客户状态"]
    assert zh[1][:3] == ["H001", "张伟", "业主"]  # the purchase made H001 an owner
    assert zh[1][zh[0].index("同意营销")] == "是"
    en = list(csv.DictReader(io.StringIO(run("export", "households", "--headers", "en").stdout)))
    assert en[0]["status"] == "existing" and en[0]["consent_marketing"] == "true"
    assert en[0]["income_band"] == "300k_500k"


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "xlsx"])
def test_full_view_export_imports_back_unchanged(loaded, run, tmp_path, suffix):
    for kind in FILES:
        out = tmp_path / f"out-{kind}.{suffix}"
        result = run("export", kind, "-o", str(out), "--headers", "en", as_="经理:manager")
        assert result.exit_code == 0, result.output
        again = run("import", kind, str(out), as_="经理:manager")
        assert again.exit_code == 0, again.output
        assert "新增 0，更新 0，未变 2，拒绝 0" in again.stderr, (kind, again.stderr)
    with loaded.session() as session:
        updates = session.scalars(select(AuditEntry).where(AuditEntry.action == "update")).all()
    # Only the purchases' own status changes (prospective -> existing) from the first load.
    assert {(e.entity, tuple(e.changes)) for e in updates} == {("households", ("status",))}


def test_jsonl_export_and_xlsx_needs_an_output_file(loaded, run):
    result = run("export", "purchases", "--format", "jsonl")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["合同号"] == "C-1" and records[0]["成交金额"] == "1234567.00"
    assert records[1]["推荐人户号"] == "H001" and records[1]["渠道"] == "老带新"
    refused = run("export", "purchases", "--format", "xlsx")
    assert refused.exit_code != 0 and "-o" in refused.stderr


def test_xlsx_export_in_chinese(loaded, run, tmp_path):
    import openpyxl

    out = tmp_path / "service.xlsx"
    assert run("export", "service", "-o", str(out)).exit_code == 0
    book = openpyxl.load_workbook(out, read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    assert rows[0][:3] == ("登记号", "户号", "类别")
    assert rows[1][:5] == ("S-1", "H001", "投诉", "电话", "已关闭")
    assert rows[1][-3:] == ("万科城", "12", "12-1A")


@pytest.mark.parametrize("name", ["service.csv", "service.jsonl", "service.xlsx"])
def test_export_into_missing_folders_creates_them(loaded, run, tmp_path, name):
    out = tmp_path / "missing" / "dir" / name
    result = run("export", "service", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Exception ignored" not in result.output
    assert out.stat().st_size > 0 and [p.name for p in out.parent.iterdir()] == [name]


def test_export_to_a_folder_or_under_a_file_is_one_sentence_and_writes_nothing(
    loaded, run, tmp_path
):
    folder = tmp_path / "reports"
    folder.mkdir()
    result = run("export", "service", "-o", str(folder), "--format", "csv")
    assert result.exit_code != 0 and "Traceback" not in result.output
    blocker = tmp_path / "blocker"
    blocker.write_text("不是文件夹")
    result = run("export", "service", "-o", str(blocker / "service.xlsx"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "无法创建文件夹" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(folder.iterdir()) == [] and blocker.read_text() == "不是文件夹"


def test_a_note_on_several_lines_keeps_the_table_aligned():
    from crm.core.render import cell_text, table

    # The note's second line stays in its column, under the first; the row's other cells are
    # blank there, so it cannot be read as a row of its own.
    text = table(
        [{"a": "第一行\n第二行", "b": 1}, {"a": "x", "b": 2}], [("a", "说明"), ("b", "数")]
    )
    assert text.splitlines() == ["说明    数", "------  --", "第一行   1", "第二行", "x        2"]
    assert cell_text("第一行\n第二行") == "第一行 第二行"  # a card or record line stays one line
