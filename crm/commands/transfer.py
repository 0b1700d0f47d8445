"""Bulk import and export: `crm import KIND FILE`, `crm export KIND`."""

from __future__ import annotations

import sys

import click

from crm.commands import emit, format_option, get_app
from crm.core.cliutil import argument, paging

KINDS = {
    "households": "客户家庭（按户号新增或更新）",
    "members": "家庭成员（按户号+姓名新增或更新；手机、身份证号加密保存）",
    "purchases": "成交记录（按合同号新增或更新；自动建项目/楼栋/房号与推荐关系）",
    "service": "服务记录：投诉、建议、权证、入伙、物业服务、维修、走访（按登记号新增或更新）",
}
FILE_FORMATS = ("csv", "jsonl", "xlsx")
# Below this size the progress bar would only flash by.
PROGRESS_MIN_BYTES = 1 << 20


@click.group("import")
def import_group() -> None:
    """从 CSV、JSON lines 或 XLSX 文件批量导入数据（表头中英文均可）。

    坏行写入拒绝文件（行号、列、原因），其余行照常导入；重复导入同一文件不会改变数据。
    """


@click.group("export")
def export_group() -> None:
    """把数据导出为 CSV、JSON lines 或 XLSX（默认中文表头）。"""


def _import_command(kind: str, description: str) -> click.Command:
    @argument("file", "文件", type=click.Path(exists=True, dir_okay=False))
    @click.option(
        "--format",
        "file_format",
        type=click.Choice(FILE_FORMATS),
        help="文件格式；默认按扩展名判断（.csv、.jsonl/.ndjson、.xlsx）。",
    )
    @click.option(
        "--encoding",
        metavar="字符编码",
        help="强制使用的文本编码，如 gbk、utf-8；默认自动识别（BOM、UTF-8、GB18030）。",
    )
    @click.option(
        "--rejects",
        type=click.Path(dir_okay=False),
        help="拒绝文件路径；默认为 输入文件名.rejects.csv，放在输入文件旁边。",
    )
    @click.option(
        "--strict", is_flag=True, help="严格模式：有任何坏行则全部不导入，并以非零状态退出。"
    )
    def command(
        file: str, file_format: str | None, encoding: str | None, rejects, strict: bool
    ) -> None:
        from pathlib import Path

        from crm.core.db import transaction
        from crm.core.importing import ImportRejected, import_file

        app = get_app()
        size = Path(file).stat().st_size
        with (
            click.progressbar(length=size, label="导入中", file=sys.stderr)
            if size >= PROGRESS_MIN_BYTES
            else _NoBar() as bar
        ):
            try:
                with app.session() as session, transaction(session):
                    result = import_file(
                        session,
                        kind,
                        file,
                        fmt=file_format,
                        encoding=encoding,
                        rejects=rejects,
                        strict=strict,
                        progress=bar.update,
                    )
            except ImportRejected as exc:
                _report(exc.result)
                raise
        _report(result)

    command.__doc__ = f"导入{description}。"
    return import_group.command(kind)(command)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        return None

    def update(self, _n: int) -> None:
        return None


def _report(result) -> None:
    for warning in result.warnings:
        click.echo(f"警告：{warning}", err=True)
    click.echo(result.summary(), err=True)


def _export_command(kind: str, description: str) -> click.Command:
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, writable=True),
        help="输出文件；不指定时 CSV、JSON lines 写到标准输出（XLSX 必须指定）。",
    )
    @click.option(
        "--format",
        "file_format",
        type=click.Choice(FILE_FORMATS),
        help="文件格式；默认按 -o 的扩展名判断，否则为 csv。",
    )
    @click.option(
        "--headers",
        type=click.Choice(("zh", "en")),
        default="zh",
        show_default=True,
        help="表头语言：zh 中文，en 英文字段名（可原样再导入）。",
    )
    def command(output: str | None, file_format: str | None, headers: str) -> None:
        import sys
        from pathlib import Path

        from crm.core.db import transaction
        from crm.core.errors import CrmError
        from crm.core.exporting import export
        from crm.core.importing import FORMATS

        path = Path(output) if output else None
        fmt = file_format
        if fmt is None:
            fmt = FORMATS.get(path.suffix.lower(), "csv") if path else "csv"
        if fmt == "xlsx" and path is None:
            raise CrmError("导出 XLSX 需要用 -o 指定输出文件。")
        app = get_app()
        with app.session() as session, transaction(session):
            result = export(session, kind, path or sys.stdout, fmt=fmt, headers=headers)
        where = f"到 {path}" if path else ""
        full = (
            f"（含完整个人信息 {result.full_personal} 人，已记入审计日志）"
            if result.full_personal
            else ""
        )
        click.echo(f"已导出 {result.rows} 行{where}{full}。", err=True)

    command.__doc__ = f"导出{description.split('（')[0].split('：')[0]}。"
    return export_group.command(kind)(command)


for _kind, _description in KINDS.items():
    _import_command(_kind, _description)
    _export_command(_kind, _description)


@import_group.command("limits")
@argument("key", "设置项", required=False)
@argument("value", "新值", required=False)
@paging(None)
@format_option
def import_limits_command(key: str | None, value: str | None, limit, offset, fmt: str) -> None:
    """列出导入上限；给出设置项与新值时修改其一（经理、管理员），如 import.xlsx_max_rows 500000。"""
    from crm.core.db import transaction
    from crm.core.errors import CrmError
    from crm.core.importing import list_import_limits, set_import_limit
    from crm.core.paging import window

    if (key is None) != (value is None):
        raise CrmError("请同时给出设置项和新值，如 crm import limits import.xlsx_max_mb 200。")
    with get_app().session() as session, transaction(session):
        if key is not None:
            set_import_limit(session, key, value)
        rows = window(list_import_limits(session), limit, offset)
    emit(rows, fmt, [("key", "设置项"), ("value", "当前值"), ("default", "默认值")])


def register(cli: click.Group) -> None:
    cli.add_command(import_group)
    cli.add_command(export_group)
