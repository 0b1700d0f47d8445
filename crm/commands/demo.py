"""`crm demo`: build a sample portfolio and tell a new user what to try next."""

from __future__ import annotations

import sys

import click

from crm.commands import get_app


@click.command()
@click.option(
    "--households",
    "-n",
    metavar="户数",
    type=click.IntRange(1, 1_000_000),
    default=3000,
    show_default=True,
    help="生成的客户家庭数（其中约 17% 为准客户）。",
)
@click.option(
    "--seed",
    type=int,
    default=2026,
    show_default=True,
    help="随机种子：相同的种子生成相同的数据。",
)
@click.option(
    "--now",
    "now_text",
    metavar="时间",
    help=(
        "演示数据的“现在”（业务时区，如 '2026-04-28 09:00'，含空格须加引号），"
        "历史从这一时刻往回生成；默认为当前时间。"
        "相同的种子与时刻生成相同的数据。"
    ),
)
@click.option(
    "--replace",
    is_flag=True,
    help="删除数据库中现有的演示数据后重建（仅系统管理员）；演示之外的数据在则仍拒绝。",
)
def demo(households: int, seed: int, now_text: str | None, replace: bool) -> None:
    """生成演示用的样例客户数据库（楼盘、客户家庭、成交、老带新、服务记录）。

    在全新的机器上也可直接运行：会先初始化数据库与密钥。

    数据库中已有演示数据时，须由系统管理员加 --replace 才会清空重建；数据库中若有不是
    crm demo 生成的客户数据（包括演示之后新增或导入的），则拒绝运行，不会覆盖。
    """
    from crm.core.cliutil import parse_local_moment
    from crm.core.db import transaction
    from crm.core.demo import build_demo
    from crm.core.vocab import SERVICE_KINDS

    now = parse_local_moment(now_text, "--now")
    app = get_app()
    app.init()
    with (
        click.progressbar(length=households, label="生成演示数据", file=sys.stderr) as bar,
        app.session() as session,
        transaction(session),
    ):
        summary = build_demo(
            session,
            households=households,
            seed=seed,
            progress=bar.update,
            now=now,
            replace=replace,
        )

    counts = summary.counts
    kinds = "、".join(
        f"{label} {summary.service_by_kind[kind]:,}"
        for kind, label in SERVICE_KINDS.items()
        if summary.service_by_kind.get(kind)
    )
    action = "已重建" if summary.rebuilt else "已生成"
    lines = [
        f"演示数据{action}：{app.safe_url}（用时 {summary.seconds:.1f} 秒）",
        f"  楼盘      {counts['projects']:,} 个（{'、'.join(summary.cities)}）",
        f"  楼栋      {counts['buildings']:,} 栋",
        f"  房号      {counts['units']:,} 套",
        (
            f"  客户家庭  {counts['households']:,} 户（业主 {summary.buyers:,}，"
            f"准客户 {summary.prospective:,}）"
        ),
        f"  家庭成员  {counts['members']:,} 人",
        (
            f"  成交      {counts['purchases']:,} 笔，其中老带新 {summary.referral_sales:,} 笔"
            f"（占 {summary.referral_share:.1%}）"
        ),
        (
            f"  复购家庭  {summary.repeat_buyers:,} 户（占已购家庭 {summary.repeat_share:.1%}，"
            f"会员复购率 {summary.member_repeat_rate:.1%}）"
        ),
        f"  服务记录  {counts['service_records']:,} 条：{kinds}（处理中 {summary.open_records:,}）",
        *(f"  {line}" for line in summary.plugin_lines),
    ]
    crm = _prefix(app.safe_url)
    tries = [
        f"{crm} household list --project {summary.sample_project}",
        f"{crm} household show {summary.sample_code}",
        f"{crm} household search {summary.sample_name}",
        f"{crm} export households -o households.xlsx",
        f"{crm} plugins",
        f"{crm} --as 王经理:manager audit list",
    ]
    click.echo("\n".join(lines))
    click.echo("\n接下来可以试试：")
    click.echo("\n".join(f"  {command}" for command in tries))


def _prefix(safe_url: str) -> str:
    """`crm`, with --db repeated (password hidden) when the database was named on the
    command line."""
    import shlex

    from click.core import ParameterSource

    root = click.get_current_context().find_root()
    if root.get_parameter_source("db") == ParameterSource.COMMANDLINE:
        return f"crm --db {shlex.quote(safe_url)}"
    return "crm"


def register(cli: click.Group) -> None:
    cli.add_command(demo)
