"""`crm simulate`: months of a service centre on a moving clock, and what they left behind."""

from __future__ import annotations

import sys

import click

from crm.commands import emit, format_option, get_app

COLUMNS = [
    ("month", "月份"),
    ("calls", "来电"),
    ("open_tickets", "月末未结工单"),
    ("stuck_tickets", "滞留超两周"),
    ("system_complaints", "系统自造投诉/预警"),
    ("warning_rises_without_event", "无新事件而预警升级"),
    ("card_mismatches", "跟踪卡与工单不一致"),
    ("duplicate_contacts", "重复联系"),
    ("refused_actions", "被拒绝的操作"),
    ("breaches", "超时"),
    ("escalations", "升级"),
    ("warnings", "新预警"),
    ("tasks", "新任务"),
    ("tasks_open", "月末未完成任务"),
    ("decisions_closed", "办结决策"),
    ("visits", "四年之约走访"),
    ("surveys", "问卷"),
    ("satisfaction_rate", "满意率"),
    ("nps", "NPS"),
]


@click.command()
@click.option(
    "--households",
    "-n",
    metavar="户数",
    type=click.IntRange(10, 100_000),
    default=3000,
    show_default=True,
    help="模拟的客户家庭数（先按此规模生成演示数据）。",
)
@click.option(
    "--months",
    metavar="月数",
    type=click.IntRange(1, 36),
    default=12,
    show_default=True,
    help="模拟几个月。",
)
@click.option("--seed", type=int, default=2026, show_default=True, help="随机种子。")
@click.option(
    "--start",
    default="2026-01-01 00:00",
    show_default=True,
    metavar="时间",
    help="模拟开始的时间（本地时间）；演示数据按此时间生成。",
)
@click.option(
    "--check-every",
    type=click.IntRange(1, 1440),
    default=5,
    show_default=True,
    metavar="分钟",
    help="服务时限检查的间隔（写入设置 scheduler.sla_check）。",
)
@format_option
def simulate(households, months, seed, start, check_every, fmt) -> None:
    """在模拟时钟上运行服务中心若干个月，逐月报告积累的问题。

    先在当前数据库生成演示数据（同 crm demo：只用于新的数据库，已有数据的数据库会被拒绝），再按模拟时钟推进：
    客户来电、员工按步骤处理（部分超时、事后补登、承诺未兑现、回访不满意），
    定时任务按排期运行（时限检查、客情预警、协调调度、生命周期触点、营销活动），
    四年之约按月走访。

    每月报告未结工单、超时与升级、满意率与 NPS，以及必须为零的几项：
    系统自造的投诉或预警、客户无新事件而预警升级、跟踪卡与工单不一致、
    重复联系、员工正常操作被拒绝。任一项不为零时以退出码 1 结束。
    """
    from crm.core.audit import current_user
    from crm.core.clock import parse_local_minute
    from crm.simulation import Month, Options, Simulation

    app = get_app()
    app.init()
    with app.session() as session:
        current_user(session).require("service.configure", "运行服务中心模拟")
    options = Options(
        households=households,
        months=months,
        seed=seed,
        start=parse_local_minute(start, "开始时间"),
        check_minutes=check_every,
    )

    def progress(month: Month) -> None:
        click.echo(
            f"{month.month}：来电 {month.calls}，月末未结 {month.open_tickets}，"
            f"超时 {month.breaches}，新任务 {month.tasks}",
            err=True,
        )

    simulation = Simulation(app, options, progress=progress)
    rows = [vars(month) for month in simulation.run()]
    emit(rows, fmt, COLUMNS)
    problems = {
        name: sum(row[name] for row in rows) for name in Month.MUST_BE_ZERO if any(
            row[name] for row in rows
        )
    }  # fmt: skip
    click.echo(f"用时 {simulation.seconds:.1f} 秒。", err=True)
    for refusal in simulation.refusals[:20]:
        click.echo(f"  被拒绝：{refusal}", err=True)
    if problems:
        titles = {key: title for key, title, *_ in COLUMNS}
        listed = "、".join(f"{titles[name]} {count}" for name, count in problems.items())
        click.echo(f"发现问题：{listed}。", err=True)
        sys.exit(1)
    click.echo("必须为零的各项均为零。", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(simulate)
