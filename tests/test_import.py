"""Bulk import: formats and encodings, rejects, strict mode, idempotence, references,
encryption of personal data, permissions."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.core.db import transaction
from crm.core.identity import id_check_digit
from crm.core.importing import ImportRejected, import_file
from crm.core.models import (
    AuditEntry,
    Building,
    Household,
    Member,
    Project,
    Purchase,
    Referral,
    ServiceRecord,
    Unit,
)
from crm.core.schemas import SCHEMAS, Vocab, compile_schema

HOUSEHOLDS_ZH = (
    "户号,姓名,客户状态,项目,年龄,家庭收入,同意营销\n"
    "H001,张伟,准客户,万科城,35,30-50万,是\n"
    "H002,李娜,业主,万科城,28,10-30万,否\n"
    "H003,王芳,,金色家园,,,\n"
)


def valid_id(first17: str = "11010519800101001") -> str:
    return first17 + id_check_digit(first17)


def write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def rejects(path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["行号", "列", "原因"]
    return rows[1:]


def count(app, model) -> int:
    with app.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def households(app) -> dict[str, Household]:
    with app.session() as session:
        return {h.code: h for h in session.scalars(select(Household))}


def audit_actions(app, action: str) -> list[AuditEntry]:
    with app.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_bad_rows_go_to_the_reject_file_and_good_rows_land(app, run, tmp_path):
    source = write(
        tmp_path / "h.csv",
        "户号,姓名,年龄,家庭收入,同意营销,来源备注\n"
        "H001,张伟,35,30-50万,是,x\n"
        "H002,李娜,abc,10-30万,否,\n"  # line 3: bad age
        "H003,,40,高收入,Y,\n"  # line 4: empty name and unknown income band
        "\n"
        "H004,赵敏,200,,N,\n",  # line 6 (after a blank line): age out of range
    )
    result = run("import", "households", str(source))
    assert result.exit_code == 0, result.output
    assert "新增 1" in result.stderr and "拒绝 3" in result.stderr
    assert "来源备注" in result.stderr  # unknown column warned
    assert set(households(app)) == {"H001"}
    lines = rejects(tmp_path / "h.csv.rejects.csv")
    assert lines[0] == ["3", "年龄", "“abc”不是整数"]
    assert lines[1] == ["4", "姓名", "不能为空"]
    assert lines[2][:2] == ["4", "家庭收入"] and "高收入" in lines[2][2]
    assert lines[3] == ["6", "年龄", "应在 0 到 120 之间"]


def test_strict_import_is_all_or_nothing(app, run, tmp_path):
    source = write(tmp_path / "h.csv", HOUSEHOLDS_ZH + "H004,赵敏,不存在的状态,,,,\n")
    chosen = tmp_path / "bad.csv"
    result = run("import", "households", str(source), "--strict", "--rejects", str(chosen))
    assert result.exit_code != 0
    assert "严格模式" in result.stderr and "拒绝 1" in result.stderr
    assert count(app, Household) == 0 and count(app, Project) == 0
    assert audit_actions(app, "import") == []
    assert [line[:2] for line in rejects(chosen)] == [["5", "客户状态"]]
    assert run("import", "households", str(write(source, HOUSEHOLDS_ZH)), "--strict").exit_code == 0
    assert count(app, Household) == 3


def test_reimport_changes_nothing_and_updates_are_audited(app, run, tmp_path):
    source = write(tmp_path / "h.csv", HOUSEHOLDS_ZH)
    assert run("import", "households", str(source)).exit_code == 0
    stamps = {code: h.updated_at for code, h in households(app).items()}
    again = run("import", "households", str(source))
    assert again.exit_code == 0
    assert "新增 0，更新 0，未变 3，拒绝 0" in again.stderr
    assert {code: h.updated_at for code, h in households(app).items()} == stamps
    assert len(audit_actions(app, "import")) == 2
    assert audit_actions(app, "update") == []
    assert not (tmp_path / "h.csv.rejects.csv").exists()

    write(source, HOUSEHOLDS_ZH.replace("H002,李娜,业主,万科城,28", "H002,李娜,业主,新城,29"))
    changed = run("import", "households", str(source))
    assert "新增 0，更新 1，未变 2" in changed.stderr
    (entry,) = audit_actions(app, "update")
    assert entry.entity == "households" and entry.changes["age"] == [28, 29]
    assert set(entry.changes) == {"age", "project_id"}
    assert "h.csv" in entry.detail and "第 3 行" in entry.detail
    (latest,) = [e for e in audit_actions(app, "import") if "更新 1" in e.detail]
    assert "sha256" in latest.detail


def test_gbk_file_with_chinese_headers(app, run, tmp_path):
    source = write(tmp_path / "excel.csv", HOUSEHOLDS_ZH.replace("\n", "\r\n"), "gbk")
    result = run("import", "households", str(source))
    assert result.exit_code == 0, result.output
    rows = households(app)
    assert rows["H001"].name == "张伟" and rows["H001"].income_band == "300k_500k"
    assert rows["H002"].status == "existing" and rows["H001"].consent_marketing is True


def test_forced_encoding_and_undecodable_file(app, run, tmp_path):
    source = write(tmp_path / "h.csv", HOUSEHOLDS_ZH, "gbk")
    assert run("import", "households", str(source), "--encoding", "gbk").exit_code == 0
    wrong = run("import", "households", str(source), "--encoding", "utf-8")
    assert wrong.exit_code != 0 and "--encoding" in wrong.stderr
    assert "Traceback" not in wrong.output


def test_utf8_bom_file_with_english_headers_in_any_case(app, run, tmp_path):
    text = " Code ,NAME,Status,consent_contact\nH010,陈静,prospective,N\n"
    source = write(tmp_path / "bom.csv", "\ufeff" + text)
    assert run("import", "households", str(source)).exit_code == 0
    household = households(app)["H010"]
    assert household.name == "陈静" and household.consent_contact is False


def test_full_width_digits_and_headers(app, run, tmp_path):
    source = write(tmp_path / "fw.csv", "户号,姓名,年龄\nＨ００１,张伟,３５\n")
    assert run("import", "households", str(source)).exit_code == 0
    assert households(app)["H001"].age == 35
    members = write(
        tmp_path / "m.csv", "户号,姓名,手机\nＨ００１,张伟,１３８　１２３４　５６７８\n"
    )
    assert run("import", "members", str(members)).exit_code == 0
    with app.session() as session:
        member = session.scalar(select(Member))
        assert session.info["vault"].decrypt(member.phone_enc) == "13812345678"


def test_missing_required_column_stops_before_any_write(app, run, tmp_path):
    source = write(tmp_path / "h.csv", "户号,年龄\nH001,30\n")
    result = run("import", "households", str(source))
    assert result.exit_code != 0
    assert "缺少必填列：姓名（name）" in result.stderr
    assert count(app, Household) == 0 and audit_actions(app, "import") == []


def test_duplicates_inside_the_file_across_chunks(app, tmp_path):
    source = write(
        tmp_path / "dup.csv",
        "code,name\nH1,甲\nH2,乙\nH3,丙\nH1,丁\nH4,戊\nH2,己\nH4,庚\n",
    )
    with app.session() as session, transaction(session):
        result = import_file(session, "households", source, chunk_size=2)
    # Which of two rows with one key is right is for a person to say: all of them are out.
    assert (result.inserted, result.rejected) == (1, 6)
    assert list(households(app)) == ["H3"]
    lines = rejects(result.rejects_path)
    assert [line[0] for line in lines] == ["2", "3", "5", "6", "7", "8"]
    assert {line[1] for line in lines} == {"code"}
    firsts = [line[2].split("首次在第 ")[1].split(" 行")[0] for line in lines]
    assert firsts == ["2", "3", "2", "6", "3", "6"]


def test_jsonl_service_records(app, run, tmp_path):
    run("import", "households", str(write(tmp_path / "h.csv", HOUSEHOLDS_ZH)))
    records = [
        {
            "登记号": "TS-1",
            "户号": "H001",
            "类别": "投诉",
            "渠道": "电话",
            "登记时间": "2024/3/5 9:30 +08:00",
            "关闭时间": "2024-03-05T10:00:00+08:00",
            "摘要": "漏水",
        },
        {
            "record_no": "TS-2",
            "household_code": "H009",
            "kind": "repair",
            "opened_at": "2024-03-06",
        },
        {"登记号": "TS-3", "户号": "H002", "类别": "建议", "登记时间": "20240307", "摘要": "绿化"},
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    source = write(tmp_path / "s.jsonl", "\n".join([lines[0], "{broken", lines[2]]) + "\n")
    result = run("import", "service", str(source))
    assert result.exit_code == 0, result.output
    assert "新增 2" in result.stderr and "拒绝 1" in result.stderr
    assert rejects(tmp_path / "s.jsonl.rejects.csv") == [["2", "", "不是有效的 JSON"]]
    with app.session() as session:
        first = session.scalar(select(ServiceRecord).where(ServiceRecord.record_no == "TS-1"))
    assert first.kind == "complaint" and first.channel == "phone" and first.status == "closed"
    assert first.closed_at == dt.datetime(2024, 3, 5, 2, 0, tzinfo=dt.UTC)


def test_xlsx_purchases_create_units_and_referrals(app, run, tmp_path):
    import openpyxl

    run("import", "households", str(write(tmp_path / "h.csv", HOUSEHOLDS_ZH)))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(
        ["合同号", "户号", "项目", "楼栋", "房号", "购房日期", "面积", "成交金额", "推荐人户号"]
    )
    sheet.append(
        [
            "C-1",
            "H001",
            "万科城",
            "12",
            "12-1A",
            dt.datetime(2024, 3, 5),
            89.5,
            "¥1,234,567.00",
            None,
        ]
    )
    sheet.append(
        ["C-2", "H003", "万科城", "12", "2A-1B", "2024年4月1日", "120㎡", "356.8万", "H001"]
    )
    sheet.append([None, None, None, None, None, None, None, None, None])
    sheet.append(["C-3", "H404", "万科城", "12", "1903", "2024-04-02", None, 100, None])
    sheet.append(["C-4", "H002", "万科城", "12", "1904", "2024-04-02", None, 100, "H999"])
    sheet.append(["C-5", "H002", None, None, "1905", "2024-04-02", None, 100, None])
    book.save(tmp_path / "p.xlsx")
    result = run("import", "purchases", str(tmp_path / "p.xlsx"))
    assert result.exit_code == 0, result.output
    assert "新增 2" in result.stderr and "拒绝 3" in result.stderr
    assert [line[:2] for line in rejects(tmp_path / "p.xlsx.rejects.csv")] == [
        ["5", "户号"],
        ["6", "推荐人户号"],
        ["7", "房号"],
    ]
    with app.session() as session:
        purchases = {p.contract_no: p for p in session.scalars(select(Purchase))}
        assert purchases["C-1"].amount == Decimal("1234567.00")
        assert purchases["C-1"].purchase_date == dt.date(2024, 3, 5)
        assert purchases["C-2"].amount == Decimal("3568000.00")
        assert purchases["C-2"].floor_area == Decimal("120.00")
        units = {u.code: u for u in session.scalars(select(Unit))}
        assert set(units) == {"12-1A", "2A-1B"} and units["12-1A"].floor_area == Decimal("89.50")
        assert session.scalar(select(func.count()).select_from(Building)) == 1
        (referral,) = session.scalars(select(Referral)).all()
        assert referral.purchase_id == purchases["C-2"].id
        assert referral.referred_on == dt.date(2024, 4, 1)
    rows = households(app)
    assert rows["H001"].status == "existing" and rows["H003"].status == "existing"
    status_updates = [e for e in audit_actions(app, "update") if e.entity == "households"]
    assert sorted(e.changes["status"][0] for e in status_updates) == ["prospective", "prospective"]
    again = run("import", "purchases", str(tmp_path / "p.xlsx"))
    assert "新增 0，更新 0，未变 2，拒绝 3" in again.stderr
    assert count(app, Referral) == 1


def test_members_personal_data_is_encrypted(app, run, tmp_path, db_url):
    run("import", "households", str(write(tmp_path / "h.csv", HOUSEHOLDS_ZH)))
    id_number = valid_id()
    source = write(
        tmp_path / "m.csv",
        "户号,姓名,身份,手机,备用电话,身份证号\n"
        f"H001,张伟,户主,138-1234-5678,010-87654321,{id_number}\n"
        "H001,张小伟,家属,12345,,\n"
        f"H002,李娜,业主,13900001111,,{id_number[:-1]}0\n",
    )
    result = run("import", "members", str(source))
    assert result.exit_code == 0, result.output
    lines = rejects(tmp_path / "m.csv.rejects.csv")
    assert [line[:2] for line in lines] == [["3", "手机"], ["4", "身份证号"]]
    assert "13900001111" not in (tmp_path / "m.csv.rejects.csv").read_text(encoding="utf-8-sig")
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM members")).all()
        logged = conn.execute(text("SELECT changes, detail FROM audit_log")).all()
    engine.dispose()
    dump = repr(stored) + repr(logged)
    for plain in ("13812345678", "138-1234-5678", "87654321", id_number):
        assert plain not in dump
    with app.session() as session:
        vault = session.info["vault"]
        member = session.scalar(select(Member))
        assert member.role == "owner" and member.phone_tail == "5678"
        assert member.phone_hash == vault.lookup_hash("13812345678")
        assert vault.decrypt(member.alt_phone_enc) == "010-87654321"
        assert vault.decrypt(member.id_number_enc) == id_number
    source.write_text("户号,姓名,手机\nH001,张伟,13812345678\nH001,李四,\n", encoding="utf-8")
    again = run("import", "members", str(source))
    assert "新增 1，更新 0，未变 1" in again.stderr
    source.write_text("户号,姓名,手机\nH001,张伟,13812340000\n", encoding="utf-8")
    changed = run("import", "members", str(source))
    assert "更新 1" in changed.stderr
    (entry,) = [e for e in audit_actions(app, "update") if e.entity == "members"]
    assert entry.changes == {"phone": ["***", "***（已更改）"]}


def test_analyst_may_not_import(app, run, tmp_path):
    result = run(
        "import", "households", str(write(tmp_path / "h.csv", HOUSEHOLDS_ZH)), as_="小王:analyst"
    )
    assert result.exit_code == 3
    assert "无权批量导入数据" in result.stderr
    assert count(app, Household) == 0


def test_library_strict_raises_and_caller_rolls_back(app, tmp_path):
    source = write(tmp_path / "h.csv", HOUSEHOLDS_ZH + "H004,,,,,,\n")
    with pytest.raises(ImportRejected) as caught, app.session() as session, transaction(session):
        import_file(session, "households", source, strict=True)
    assert caught.value.result.rejected == 1 and caught.value.result.inserted == 3
    assert count(app, Household) == 0


def test_help_of_every_transfer_command(run):
    for args in (
        ("import",),
        ("export",),
        *(("import", kind) for kind in SCHEMAS),
        *(("export", kind) for kind in SCHEMAS),
    ):
        result = run(*args, "--help")
        assert result.exit_code == 0, args
        assert "用法" in result.output or "Usage" in result.output


def test_schema_lengths_match_the_database_columns():
    from marshmallow import validate

    tables = {
        "households": Household.__table__,
        "members": Member.__table__,
        "purchases": Purchase.__table__,
        "service": ServiceRecord.__table__,
    }
    for kind, schema in SCHEMAS.items():
        for name, field in schema().fields.items():
            column = tables[kind].c.get(name)
            length = getattr(getattr(column, "type", None), "length", None)
            if length is None or isinstance(field, Vocab):  # vocabulary codes are short
                continue
            limits = [v.max for v in field.validators if isinstance(v, validate.Length)]
            assert limits == [length], (kind, name)


@pytest.mark.parametrize(
    ("kind", "name", "raw"),
    [
        ("households", "code", " Ｈ００１ "),
        ("households", "age", "３５"),
        ("households", "age", " 40 "),
        ("households", "age", 41.0),
        ("households", "age", "x"),
        ("households", "status", "业主"),
        ("households", "status", " Existing "),
        ("households", "status", "老业主"),
        ("households", "consent_marketing", "Y"),
        ("households", "consent_marketing", "否"),
        ("households", "consent_marketing", "maybe"),
        ("households", "name", ""),
        ("purchases", "amount", "12.5万"),
        ("purchases", "amount", "-3"),
        ("purchases", "purchase_date", "2024.3.5"),
        ("purchases", "purchase_date", "2024-02-30"),
        ("members", "phone", "13812345678"),
        ("members", "phone", "010-12345678"),
        # the length and character checks the fast paths make inline
        ("households", "code", "H" * 40),
        ("households", "code", "H" * 41),
        ("households", "code", " H1\x1b "),
        ("households", "code", "'=H1"),
        ("households", "name", "甲" * 100),
        ("households", "name", " " + "甲" * 100 + " "),
        ("households", "name", "甲" * 101),
        ("households", "name", "\u3000甲\u3000"),
        ("households", "name", "甲\x00"),
        ("households", "name", "甲\n乙"),
        ("households", "name", "'+甲"),
        ("households", "name", "   "),
        ("households", "note", "第一行\r\n第二行"),
        ("households", "note", "x" * 10_001),
        ("service", "summary", ""),
        ("purchases", "unit", "1" * 31),
    ],
)
def test_fast_converters_agree_with_schema_load(kind, name, raw):
    """The compiled converters must accept and refuse exactly what marshmallow does."""
    from marshmallow import ValidationError

    column = compile_schema(SCHEMAS[kind])[name]
    field = SCHEMAS[kind]().fields[name]
    try:
        expected = ("ok", field.deserialize(raw))
    except ValidationError as exc:
        expected = ("error", exc.messages[0])
    try:
        got = ("ok", column.convert(raw))
    except ValueError as exc:
        got = ("error", str(exc))
    assert got == expected


def test_rejects_into_missing_folders_creates_them(app, run, tmp_path):
    source = write(tmp_path / "h.csv", HOUSEHOLDS_ZH + "H004,赵敏,不存在的状态,,,,\n")
    chosen = tmp_path / "missing" / "dir" / "r.csv"
    result = run("import", "households", str(source), "--rejects", str(chosen))
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert [line[:2] for line in rejects(chosen)] == [["5", "客户状态"]]
    assert count(app, Household) == 3
