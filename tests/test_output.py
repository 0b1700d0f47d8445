"""Readable output: tables that fit the terminal (Chinese counted two columns wide), --help that
aligns and never splits a word, rooms in numeric order, one format per kind of figure, XLSX
sheets people can work with, and charts whose every character has a glyph."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from crm.core.db import transaction
from crm.core.figures import HOURS, MINUTES, MONEY, NPS, RATE, SCORE
from crm.core.models import Building, Project, Unit
from crm.core.render import fit_table, json_record, render, table
from crm.core.sorting import natural_key, natural_order
from crm.core.textwidth import display_width, fill, wrap

WORD = re.compile(r"[A-Za-z0-9_]{2,}")
MIXED = (
    "只看某种操作：create、update、delete、view_personal、import、export。实际发生的时间"
    "（本地时间，如 2026-12-02 08:05），事后补登时填写。类型：remedial（补救措施）、"
    "corrective（纠正措施）、repair（维修）、revisit（回访）。"
)


# --- measuring and wrapping ------------------------------------------------------------------


def test_display_width_counts_chinese_two_and_combining_marks_none():
    assert display_width("abc") == 3
    assert display_width("翠湖花园") == 8
    assert display_width("（）、。") == 8
    assert display_width("e\u0301") == 1


def test_the_quick_measure_agrees_with_wcwidth_on_every_character_it_settles():
    from wcwidth import wcwidth

    from crm.core.textwidth import _plain_width

    settled = [chr(c) for c in range(0x20, 0x10000) if chr(c).isprintable()]
    disagree = [
        ch for ch in settled if (mine := _plain_width(ch)) is not None and mine != wcwidth(ch)
    ]
    assert disagree == []


@pytest.mark.parametrize("width", [15, 17, 30, 41, 78])  # "view_personal、" is 15
def test_wrapping_keeps_ascii_words_whole_and_lines_within_the_width(width):
    lines = wrap(MIXED, width)
    assert all(display_width(line) <= width for line in lines)
    words = set(WORD.findall(MIXED))
    assert words <= {word for line in lines for word in WORD.findall(line)}
    assert not any(line[0] in "、，。）：" for line in lines if line)  # no line opens on these
    assert not any(line.endswith("（") for line in lines)
    assert "".join(lines).replace(" ", "") == MIXED.replace(" ", "")


def test_only_a_word_wider_than_the_line_is_cut_preferably_after_a_separator():
    assert wrap("编号：161,195,217,228,230", 12) == ["编号：", "161,195,217,", "228,230"]
    assert wrap("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_paragraph_lines_join_without_a_space_between_chinese_characters():
    assert fill("第一行\n第二行 and\nmore", 80) == "第一行第二行 and more"


# --- --help ----------------------------------------------------------------------------------


def _commands(command: click.Command, path: list[str]):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, [*path, name])


def test_every_help_fits_80_columns_aligns_and_splits_no_word():
    from crm.cli import cli

    runner = CliRunner()  # click's test runner formats help 80 columns wide
    for path, command in _commands(cli, []):
        text = runner.invoke(cli, [*path, "--help"]).output
        lines = text.splitlines()
        too_wide = [line for line in lines if display_width(line) > 80]
        assert not too_wide, (path, too_wide)
        shown = set(WORD.findall(text))
        for param in command.params:
            written = getattr(param, "help", None) or ""
            assert set(WORD.findall(written)) <= shown, (path, param.name)
        # Every option's help starts in one column, however wide its placeholder is.
        options = lines[lines.index("选项：") + 1 :]
        starts = {
            display_width(m.group(1))
            for line in options
            if line.startswith("  -") and (m := re.match(r"(\s+\S.*?\S?\s{2,})\S", line))
        }
        assert len(starts) <= 1, (path, starts)


def test_a_chinese_placeholder_lines_up_with_the_others():
    from crm.cli import cli

    text = CliRunner().invoke(cli, ["--help"]).output
    db = next(line for line in text.splitlines() if line.startswith("  --db 地址"))
    role = next(line for line in text.splitlines() if line.startswith("  --as [姓名:]角色"))
    assert display_width(db[: db.index("数据库")]) == display_width(role[: role.index("以谁")])


# --- tables ----------------------------------------------------------------------------------

COLUMNS = [
    ("number", "登记号"),
    ("household", "客户编号"),
    ("team", "团队"),
    ("opened", "受理时间"),
    ("level", "升级级别"),
    ("summary", "摘要"),
]


def _rows(count: int = 3) -> list[dict]:
    return [
        {
            "number": f"TS20261202-{n:04d}",
            "household": f"H{n:06d}",
            "team": "工程技术部",
            "opened": dt.datetime(2026, 12, 2, 2, n, tzinfo=dt.UTC),
            "level": n,
            "summary": "3 栋 1903 室卫生间顶棚渗水，楼上业主不在家，已联系物业协助",
        }
        for n in range(1, count + 1)
    ]


def test_a_wide_table_wraps_its_text_to_fit_and_keeps_every_column_when_it_can():
    fitted = fit_table(_rows(), COLUMNS, 100)
    lines = fitted.text.splitlines()
    assert max(display_width(line) for line in lines) <= 100
    assert fitted.dropped == [] and fitted.note is None
    assert lines[0].split() == ["登记号", "客户编号", "团队", "受理时间", "升级级别", "摘要"]
    # The summary continues under itself; the row's other cells are blank there.
    first, second = lines[2], lines[3]
    assert first.startswith("TS20261202-0001") and second.startswith(" " * 20)
    assert display_width(second[: len(second) - len(second.lstrip())]) == display_width(
        first[: first.index("3 栋")]
    )


def test_columns_are_left_out_in_the_declared_order_then_from_the_right_and_said():
    fitted = fit_table(_rows(), COLUMNS, 70, drop=("household",))
    assert max(display_width(line) for line in fitted.text.splitlines()) <= 70
    assert fitted.dropped[0] == "客户编号" and "登记号" in fitted.text.splitlines()[0]
    assert "摘要" not in fitted.dropped or fitted.dropped[-1] == "摘要"
    assert "表中未显示" in fitted.note and "--format json" in fitted.note


def test_a_cell_longer_than_three_lines_ends_in_an_ellipsis_and_the_note_says_so():
    rows = [{"number": "TS1", "summary": "很长的说明。" * 40}]
    fitted = fit_table(rows, [("number", "登记号"), ("summary", "摘要")], 40)
    assert len(fitted.text.splitlines()) == 2 + 3 and fitted.text.rstrip().endswith("…")
    assert fitted.cut and "前 3 行" in fitted.note


def test_empty_columns_go_first_and_unannounced():
    rows = [dict(row, household=None) for row in _rows()]
    fitted = fit_table(rows, COLUMNS, 100)
    assert "客户编号" not in fitted.text and fitted.dropped == []


def test_render_writes_the_note_to_stderr_and_json_keeps_every_column(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "60")
    render(_rows(), "table", COLUMNS)
    out, err = capsys.readouterr()
    assert max(display_width(line) for line in out.splitlines()) <= 60
    assert "终端宽 60 列" in err and "表中未显示" in err
    render(_rows(), "json", COLUMNS)
    assert '"summary"' in capsys.readouterr().out


def test_a_json_record_labels_its_codes_and_those_of_its_nested_records():
    states = {"open": "处理中", "done": "已完成"}
    record = {
        "status": "open",
        "cost": 100.0,
        "orders": [{"number": "A-01", "status": "done"}, {"number": "A-02", "status": None}],
        "notes": [{"status": "done"}],
    }
    labels = [("status", "状态", states), ("cost", "费用", MONEY)]
    sections = [("派工单", "orders", [("number", "单号"), ("status", "状态", states)])]
    out = json_record(record, labels, sections)
    # the codes stay, each label beside its code; a figure is no code: no cost_label
    assert list(out) == ["status", "status_label", "cost", "orders", "notes"]
    assert out["status_label"] == "处理中"
    assert out["orders"] == [
        {"number": "A-01", "status": "done", "status_label": "已完成"},
        {"number": "A-02", "status": None, "status_label": None},
    ]
    # a list no section names is left as it is; a label the record has already stays its own
    assert out["notes"] == [{"status": "done"}]
    assert json_record({"status": "open", "status_label": "自定"}, labels)["status_label"] == "自定"


def test_json_labels_the_records_of_a_section_given_by_name_and_those_of_a_listing(capsys):
    states = {"open": "处理中", "done": "已完成"}
    sections = [("结果", "outcome", [("status", "状态", states)])]
    record = {"outcome": {"A-01": {"status": "done"}, "A-02": "open"}}
    # records by name keep their names; what is no record is left as it is
    assert json_record(record, [], sections)["outcome"] == {
        "A-01": {"status": "done", "status_label": "已完成"},
        "A-02": "open",
    }
    # a listing's rows: their own coded columns and the records of their sections
    row = {"status": "open", "outcome": {"A-01": {"status": "open"}}}
    render([row], "json", [("status", "状态", states), ("outcome", "结果")], sections=sections)
    assert json.loads(capsys.readouterr().out) == [
        {
            "status": "open",
            "status_label": "处理中",
            "outcome": {"A-01": {"status": "open", "status_label": "处理中"}},
        }
    ]


def test_figures_read_one_way_per_kind_right_aligned():
    rows = [
        {"k": "甲", "m": 46320.0, "r": 0.6264, "n": 27.47, "s": -0.36, "mi": 101.56, "h": 11.84},
        {"k": "乙", "m": Decimal("5.5"), "r": 1.0, "n": -3.0, "s": 4.0, "mi": 7767.4, "h": 0.0},
    ]
    columns = [
        ("k", "组"),
        ("m", "金额", MONEY),
        ("r", "率", RATE),
        ("n", "NPS", NPS),
        ("s", "差距", SCORE),
        ("mi", "分钟", MINUTES),
        ("h", "小时", HOURS),
    ]
    lines = table(rows, columns, 200).splitlines()
    assert lines[2].split() == ["甲", "46,320.00", "62.6%", "27.5", "-0.36", "102", "11.8"]
    assert lines[3].split() == ["乙", "5.50", "100.0%", "-3.0", "4.00", "7,767", "0.0"]
    assert lines[2].index("46,320.00") + len("46,320.00") == lines[3].index("5.50") + 4
    assert table([{"x": 0.5}], [("x", "x")], 80).splitlines()[2].strip() == "0.50"


def test_the_readme_shows_each_kind_of_figure_as_it_reads():
    from pathlib import Path

    from crm.core.figures import DECIMAL, VALUE

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    examples = [
        (MONEY, 12345.6), (VALUE, 300191.27), (RATE, 0.6264), (NPS, 27.47), (SCORE, -0.36), (MINUTES, 1101.6),
        (HOURS, 11.84), (DECIMAL, 1234.567),
    ]  # fmt: skip
    for figure, value in examples:
        assert f"| `{figure(value)}` |" in readme, figure


# --- rooms in numeric order --------------------------------------------------------------------


def test_rooms_and_buildings_sort_by_their_numbers_on_either_database(app):
    codes = ["1804", "202", "12-10A", "12-2B", "2A-1B", "10-1A", "A-01", "2-2B"]
    with app.session() as session, transaction(session):
        project = Project(name="排序花园")
        for building in ("10栋", "2栋", "1号楼"):
            holder = Building(project=project, name=building)
            session.add_all(Unit(building=holder, code=code) for code in codes)
        session.add(project)
    expected = ["A-01", "2A-1B", "2-2B", "10-1A", "12-2B", "12-10A", "202", "1804"]
    assert sorted(codes, key=natural_key) == expected
    with app.session() as session:
        ordered = session.execute(
            select(Building.name, Unit.code)
            .join(Unit.building)
            .join(Building.project)
            .where(Project.name == "排序花园")
            .order_by(*natural_order(Building.name), *natural_order(Unit.code))
        ).all()
    assert [name for name, _ in ordered[:: len(codes)]] == ["1号楼", "2栋", "10栋"]
    assert [code for _, code in ordered[: len(codes)]] == expected


# --- XLSX --------------------------------------------------------------------------------------


def test_xlsx_has_a_frozen_header_fitted_widths_and_real_dates(tmp_path, monkeypatch):
    import openpyxl

    from crm.core.outfiles import write_xlsx

    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    path = tmp_path / "list.xlsx"
    rows = [
        ["H000001", "翠湖花园三期南区", dt.date(2026, 12, 2), dt.datetime(2026, 12, 2, 2, 5, tzinfo=dt.UTC)],
        ["H000002", "x", None, None],
    ]  # fmt: skip
    write_xlsx(path, ["客户编号", "项目", "交房日期", "受理时间"], rows, "名单")
    sheet = openpyxl.load_workbook(path).active
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.bold
    widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCD"}
    assert widths["B"] >= display_width("翠湖花园三期南区") > widths["A"] >= len("H000001")
    assert (
        sheet["C2"].value == dt.datetime(2026, 12, 2) and sheet["C2"].number_format == "yyyy-mm-dd"
    )
    assert sheet["D2"].value == dt.datetime(2026, 12, 2, 10, 5)  # business-zone wall time
    assert sheet["D2"].number_format == "yyyy-mm-dd hh:mm"


# --- charts ------------------------------------------------------------------------------------


def _kpi_rows(labels: list[str]) -> list[dict]:
    return [
        {"label": label, "satisfaction_rate": 0.62, "timeliness_rate": 0.84, "nps": 27.5,
         "closure_rate": 0.92, "revisit_rate": 0.22 + i / 100}
        for i, label in enumerate(labels)
    ]  # fmt: skip


def test_every_character_of_the_charts_has_a_glyph_without_a_system_chinese_font(
    monkeypatch, tmp_path
):
    from crm.core import charts as shared
    from crm.core.demo import PROJECTS
    from crm.plugins.satisfaction.charts import _by_project, _trend
    from crm.plugins.satisfaction.kpis import UNGROUPED

    monkeypatch.setattr(shared, "cjk_font", lambda: None)
    assert shared.families() == [shared.FONT_FAMILY, "DejaVu Sans"]
    projects = _kpi_rows([p.name for p in PROJECTS] + [UNGROUPED])
    months = _kpi_rows([f"2026-{m:02d}" for m in range(1, 13)])
    texts = []
    with shared.charts(tmp_path) as drawing:
        for draw, rows in ((_trend, months), (_by_project, projects)):
            figure = drawing.figure(10, 5.5)
            draw(figure, rows)
            figure.canvas.draw()
            texts += shared.figure_texts(figure)
    assert "满意度与服务指标月度趋势" in texts and "翠湖花园" in texts
    # Each character is in the package's own font, not merely in some fallback.
    assert shared.missing_glyphs(texts, [shared.FONT_FAMILY]) == []
    assert shared.missing_glyphs(["喆𠀀"], [shared.FONT_FAMILY]) == ["喆", "𠀀"]


def test_the_legend_covers_no_bar_of_the_projects_chart(tmp_path):
    from matplotlib.patches import Rectangle

    from crm.core.charts import charts
    from crm.core.demo import PROJECTS
    from crm.plugins.satisfaction.charts import _by_project

    rows = _kpi_rows([p.name for p in PROJECTS])
    for row in rows:
        row.update(satisfaction_rate=1.0, timeliness_rate=1.0, closure_rate=1.0, revisit_rate=1.0)
    with charts(tmp_path) as drawing:
        figure = drawing.figure(10, 5.5)
        _by_project(figure, rows)
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        legend = figure.legends[0].get_window_extent(renderer)
        [axes] = figure.axes
        bars = [p for p in axes.patches if isinstance(p, Rectangle) and p.get_height() > 0]
        assert len(bars) == 4 * len(PROJECTS)
        assert not any(bar.get_window_extent(renderer).overlaps(legend) for bar in bars)


# --- the listing commands on a demo --------------------------------------------------------------

LISTINGS = [
    ["ticket", "list"],
    ["ticket", "register"],
    ["workorder", "list"],
    ["task", "list"],
    ["coordinate", "log"],
    ["audit", "list"],
    ["survey", "list"],
    ["satisfaction", "report"],
    ["satisfaction", "warnings"],
    ["fund", "ledger"],
    ["analysis", "referrals"],
    ["profitability", "settings", "list"],
    ["household", "show", "H000001"],
]


def test_every_listing_fits_120_columns_on_the_demo(run, fixed_now_text):
    assert run("demo", "--households", "60", "--now", fixed_now_text).exit_code == 0
    manager = "王经理:manager"
    assert run("satisfaction", "warnings", "--detect", as_=manager).exit_code == 0
    assert run("coordinate", "run", as_=manager).exit_code == 0
    widest = {}
    for args in LISTINGS:
        result = run(*args, as_=manager)
        assert result.exit_code == 0, (args, result.output)
        lines = result.stdout.splitlines()
        assert len(lines) > 2, args  # a table, not "（无记录）"
        widest[" ".join(args)] = max(display_width(line) for line in lines)
    assert max(widest.values()) <= 120, widest
