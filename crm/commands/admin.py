"""Set-up and housekeeping: init, db upgrade/current, plugins, audit log."""

from __future__ import annotations

import click

from crm.commands import emit, format_option, get_app


@click.command()
def init() -> None:
    """初始化数据库与密钥（已初始化时只做升级）。"""
    app = get_app()
    revisions = app.init()
    click.echo(f"数据库已就绪：{app.safe_url}（结构版本 {_versions(revisions)}）")
    source = "环境变量 CRM_SECRET_KEY" if _env_key() else app.key_file
    click.echo(f"个人信息密钥：{source}（指纹 {app.vault.fingerprint}）")


def _env_key() -> bool:
    import os

    return bool(os.environ.get("CRM_SECRET_KEY"))


@click.group()
def db() -> None:
    """数据库结构管理（alembic 迁移）。"""


@db.command("upgrade")
def db_upgrade() -> None:
    """创建或升级数据库结构到最新版本。"""
    app = get_app()
    revisions = app.init()
    click.echo(f"数据库结构已是最新版本（{_versions(revisions)}）：{app.safe_url}")


def _versions(revisions: dict[str, str | None]) -> str:
    return "，".join(f"{name} {revision}" for name, revision in revisions.items())


@db.command("current")
@format_option
def db_current(fmt: str) -> None:
    """显示数据库地址与核心及各插件的结构版本。"""
    from crm.core.migrate import current_revision, head_revision

    app = get_app()
    rows = [
        {
            "chain": chain.name,
            "url": app.safe_url,
            "current": current_revision(app.engine, chain) or "（未初始化）",
            "head": head_revision(chain),
        }
        for chain in app.migration_chains()
    ]
    emit(
        rows,
        fmt,
        [("chain", "部分"), ("url", "数据库"), ("current", "当前版本"), ("head", "最新版本")],
    )


@click.command()
@format_option
def plugins(fmt: str) -> None:
    """列出已加载的插件及其实现的钩子。"""
    from crm.core.plugins import describe_plugins

    # The plugins of this invocation's App (the root group made it): no database is opened.
    emit(
        describe_plugins(get_app().pm),
        fmt,
        [("name", "插件"), ("source", "来源"), ("hooks", "钩子")],
    )


@click.group()
def audit() -> None:
    """审计日志：谁在何时改了什么、看了哪些个人信息。"""


@audit.command("list")
@click.option("--entity", help="只看某类对象，如 households、members。")
@click.option("--id", "entity_id", help="只看某个对象的编号。")
@click.option("--actor", help="只看某个操作人。")
@click.option(
    "--action", help="只看某种操作：create、update、delete、view_personal、import、export。"
)
@click.option(
    "--limit", type=click.IntRange(1), default=50, show_default=True, help="最多显示条数。"
)
@format_option
def audit_list(entity, entity_id, actor, action, limit, fmt) -> None:
    """按时间倒序列出审计日志（经理、管理员可查看）。"""
    from crm.core.auditlog import list_entries

    app = get_app()
    with app.session() as session:
        rows = list_entries(
            session, entity=entity, entity_id=entity_id, actor=actor, action=action, limit=limit
        )
    emit(
        rows,
        fmt,
        [
            ("at", "时间"),
            ("actor", "操作人"),
            ("role", "角色"),
            ("action", "操作"),
            ("entity", "对象"),
            ("entity_id", "编号"),
            ("changes", "变更"),
            ("detail", "说明"),
        ],
    )


def register(cli: click.Group) -> None:
    for command in (init, db, plugins, audit):
        cli.add_command(command)
