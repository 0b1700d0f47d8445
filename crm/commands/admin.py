"""Set-up and housekeeping: init, db upgrade/current, plugins, audit log."""

from __future__ import annotations

import click

from crm.commands import emit, format_option, get_app
from crm.core.cliutil import argument, date_range, paging


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
@paging(None)
@format_option
def db_current(limit, offset, fmt: str) -> None:
    """显示数据库地址与核心及各插件的结构版本。"""
    from crm.core.migrate import current_revision, head_revision
    from crm.core.paging import window

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
        window(rows, limit, offset),
        fmt,
        [("chain", "部分"), ("url", "数据库"), ("current", "当前版本"), ("head", "最新版本")],
    )


@click.command()
@paging(None)
@format_option
def plugins(limit, offset, fmt: str) -> None:
    """列出已加载的插件及其实现的钩子。"""
    from crm.core.paging import window
    from crm.core.plugins import describe_plugins

    # The plugins of this invocation's App (the root group made it): no database is opened.
    emit(
        window(describe_plugins(get_app().pm), limit, offset),
        fmt,
        [("name", "插件"), ("source", "来源"), ("hooks", "钩子")],
    )


@click.group()
def audit() -> None:
    """审计日志：谁在何时改了什么、看了哪些个人信息。"""


@audit.command("list")
@click.option("--entity", metavar="对象类型", help="只看某类对象，如 households、members。")
@click.option("--id", "entity_id", metavar="对象编号", help="只看某个对象的编号。")
@click.option("--actor", metavar="操作人", help="只看某个操作人。")
@click.option(
    "--action",
    metavar="操作",
    help="只看某种操作：create、update、delete、view_personal、import、export。",
)
@date_range("操作日期")
@paging(50)
@format_option
def audit_list(entity, entity_id, actor, action, since, until, limit, offset, fmt) -> None:
    """按时间倒序列出审计日志（经理、管理员可查看）。"""
    from crm.core import auditlabels
    from crm.core.auditlog import list_entries
    from crm.core.render import printable
    from crm.core.security import ROLES

    app = get_app()
    with app.session() as session:
        rows = list_entries(
            session,
            entity=entity,
            entity_id=entity_id,
            actor=actor,
            action=action,
            limit=limit,
            offset=offset,
            since=since,
            until=until,
        )
    labels = auditlabels.collect(app.pm)
    for row in rows:
        changes = row.pop("changes_data")
        row["changes_label"] = labels.changes(row["entity"], row["entity_id"], changes)
    # Old rows may hold newlines or terminal codes (names were not checked before): shown
    # escaped, they cannot forge a line or recolour the screen.
    rows = rows.map(
        lambda row: {key: printable(v) if isinstance(v, str) else v for key, v in row.items()}
    )
    # People read the changes in Chinese; programs get them as stored, with the Chinese beside.
    changes = (
        [("changes", "变更"), ("changes_label", "变更（中文）")]
        if fmt == "json"
        else [("changes_label", "变更")]
    )
    emit(
        rows,
        fmt,
        [
            ("at", "时间"),
            ("actor", "操作人"),
            ("role", "角色", ROLES),
            ("action", "操作", labels.actions),
            ("entity", "对象", labels.entities),
            ("entity_id", "编号"),
            *changes,
            ("detail", "说明"),
        ],
        drop=("role", "entity_id"),
    )


@audit.command("alerts")
@click.option(
    "--days",
    metavar="天数",
    type=click.IntRange(1, 3650),
    default=7,
    show_default=True,
    help="查看最近几天。",
)
@paging(None)
@format_option
def audit_alerts(days, limit, offset, fmt) -> None:
    """按个人信息（电话、尾号、身份证号）查找超过每小时上限的员工（经理、管理员可查看）。

    有人反复撞上限，往往是在把打码的号码逐个试成完整号码：请找本人核实。"""
    import datetime as dt

    from crm.core.auditlog import search_alerts
    from crm.core.models import utcnow
    from crm.core.paging import window
    from crm.core.render import printable
    from crm.core.security import ROLES

    app = get_app()
    with app.session() as session:
        rows = search_alerts(session, utcnow() - dt.timedelta(days=days))
    if not rows and fmt == "table":
        click.echo(f"最近 {days} 天没有人超过按个人信息查找的上限。")
        return
    rows = [{k: printable(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
    for row in rows:
        row["role"] = ROLES.get(row["role"], row["role"])
    emit(
        window(rows, limit, offset),
        fmt,
        [
            ("actor", "员工"),
            ("role", "角色"),
            ("refusals", "被拒次数"),
            ("first", "首次"),
            ("last", "最近"),
            ("detail", "最近一次"),
        ],
    )


@audit.command("search-limit")
@argument("value", "上限", required=False)
def audit_search_limit(value) -> None:
    """查看或修改每人每小时按电话、尾号、身份证号查找的上限（修改：经理、管理员）。

    只限制看到的是打码号码的角色（销售、客服专员、分析员）；经理、管理员的查找照样记入审计日志。"""
    from crm.core.db import transaction
    from crm.core.households import SEARCH_LIMIT, search_limit, set_search_limit

    with get_app().session() as session, transaction(session):
        if value is not None:
            old, new = set_search_limit(session, value)
            click.echo(f"{SEARCH_LIMIT.key}：{old or f'默认 {SEARCH_LIMIT.default}'} → {new}")
            return
        limit = search_limit(session)
    click.echo(f"每人每小时按个人信息查找的上限：{limit} 次（默认 {SEARCH_LIMIT.default}）")


@audit.command("verify")
@click.option(
    "--expect",
    "expected",
    metavar="哈希值",
    help="之前记下的链尾哈希：核对它仍在链上（防删除最新记录或整条链被重算）。",
)
def audit_verify(expected) -> None:
    """核对审计日志的哈希链，报告第一处断链（经理、管理员可用；断链时退出码为 1）。"""
    import sys

    from crm.core.auditlog import count_entries, find_hash, verify_chain

    app = get_app()
    with app.session() as session:
        total = count_entries(session)
        with click.progressbar(length=total, label="核对审计日志", file=sys.stderr) as bar:
            check = verify_chain(session, progress=bar.update)
        anchor = find_hash(session, expected) if expected and check.broken is None else None
    if check.broken is None:
        click.echo(f"审计日志完整：{check.checked} 条记录的哈希链全部吻合。")
        # Deleting the newest rows leaves a shorter chain that is still whole: this line, kept
        # somewhere else, is what --expect checks next time.
        click.echo(f"链尾哈希：{check.last_hash or '（空日志）'}")
        if not expected:
            return
        if anchor is None:
            click.echo(
                f"记下的哈希 {expected} 已不在链上：此后的记录被删除，或整条链被改写后重算。"
            )
            sys.exit(1)
        click.echo(f"记下的哈希仍在链上（第 {anchor} 条记录），截至该条的记录未被改动。")
        return
    broken = check.broken
    click.echo(
        f"审计日志的哈希链在第 {broken.id} 条记录（{_local_time(broken.at)}）处断开："
        f"{_break_text(broken)}。前 {check.checked - 1} 条记录完好。"
    )
    sys.exit(1)


def _local_time(moment) -> str:
    from crm.core.clock import to_local

    return f"{to_local(moment):%Y-%m-%d %H:%M:%S}"


def _break_text(broken) -> str:
    from crm.core import auditlog

    previous = f"第 {broken.previous_id} 条"
    if broken.problem == auditlog.UNCHAINED:
        return "这条记录没有哈希，是绕过哈希链写入的"
    if broken.problem == auditlog.EDITED:
        return "这条记录的内容与它的哈希不符，写入后被改过"
    if broken.problem == auditlog.MISSING:
        if broken.previous_id is None:
            return "它之前的记录被删除了（它本不是链上的第一条）"
        return f"它链接的上一条记录已不存在：{previous}与它之间的记录被删除，或{previous}被改写后重算了哈希"
    if broken.linked_id is None:
        return f"顺序被调换：它在链上是第一条，前面却还有{previous}等记录"
    return f"顺序被调换：链上它应紧跟在第 {broken.linked_id} 条之后，而不是{previous}之后"


def register(cli: click.Group) -> None:
    for command in (init, db, plugins, audit):
        cli.add_command(command)
