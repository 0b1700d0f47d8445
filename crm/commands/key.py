"""The personal-data key: back it up, rotate it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from crm.commands import get_app


@click.group()
def key() -> None:
    """个人信息密钥：备份与轮换（系统管理员）。"""


@key.command("backup")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="备份文件（新建，权限 0600；已存在时拒绝覆盖）。",
)
def key_backup(output: Path) -> None:
    """把当前密钥备份到一个新文件（写入审计日志）。"""
    from crm.core.keys import backup

    fingerprint = backup(get_app(), output)
    click.echo(
        f"密钥（指纹 {fingerprint}）已备份到 {output}（权限 0600）："
        "请离线妥善保管；丢失密钥将无法解密任何个人信息。"
    )


@key.command("rotate")
@click.option(
    "--batch-size",
    metavar="人数",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="每个事务重新加密的成员数。",
)
def key_rotate(batch_size: int) -> None:
    """换用新密钥：分批重新加密全部个人信息；中断后再次运行即从断点继续。

    运行前请停止调度器和其他 crm 进程；密钥须在密钥文件中（不能来自 CRM_SECRET_KEY）。
    """
    from crm.core.keys import start_rotation

    app = get_app()
    rotation = start_rotation(app)
    label = "继续轮换密钥" if rotation.resumed else "轮换密钥"
    with click.progressbar(length=rotation.remaining, label=label, file=sys.stderr) as bar:
        rotation.run(batch_size, progress=bar.update)
    rotation.finish()
    click.echo(
        f"密钥已轮换：指纹 {rotation.old.fingerprint} → {rotation.new.fingerprint}，"
        f"重新加密 {rotation.done:,} 位成员的个人信息；新密钥已写入 {rotation.key_file}。"
        "旧密钥已作废，请用 crm key backup 备份新密钥。"
    )


def register(cli: click.Group) -> None:
    cli.add_command(key)
