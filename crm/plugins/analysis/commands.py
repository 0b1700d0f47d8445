"""The `crm analysis` group and its referral commands (`referrals|referrers|chains`); segments,
propensity and complaint classification add their commands from their own modules.

Each command parses, calls the library, renders; heavy imports stay inside the functions.
"""

from __future__ import annotations

import click

from crm.core.cliutil import emit, format_option, get_app, paging, parse_day
from crm.core.figures import MONEY, RATE

SHARE_COLUMNS = [
    ("project", "项目"),
    ("period", "期间"),
    ("sales", "成交套数"),
    ("referral_sales", "推荐成交套数"),
    ("share", "推荐占比（套数）", RATE),
    ("amount", "成交金额（元）", MONEY),
    ("referral_amount", "推荐成交金额（元）", MONEY),
    ("amount_share", "推荐占比（金额）", RATE),
    ("reference", "参考区间"),
    ("flag", "提示"),
]
REFERRER_COLUMNS = [
    ("rank", "排名"),
    ("household", "客户编号"),
    ("name", "家庭名称"),
    ("referred", "推荐户数"),
    ("buyers", "推荐成交户数"),
    ("referred_amount", "推荐成交金额（元）", MONEY),
    ("first_referral", "首次推荐"),
    ("last_referral", "最近推荐"),
    ("own_purchases", "本户购买次数"),
    ("bought_again", "本户再次购买"),
]
CHAIN_COLUMNS = [
    ("rank", "排名"),
    ("length", "链长（户）"),
    ("chain", "推荐链（客户编号）"),
    ("names", "家庭名称"),
    ("sales", "链上成交总额（元）", MONEY),
    ("cycle", "含循环"),
]
DISTRIBUTION_COLUMNS = [("length", "链长（户）"), ("chains", "链数")]


@click.group()
def analysis() -> None:
    """客户数据分析：客户分群、再购与推荐倾向、老带新推荐、投诉分类与投诉热点。"""


@analysis.command("referrals")
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["project", "year", "quarter"]),
    default="project",
    show_default=True,
    help="分组方式：按项目，或按项目与年份/季度。",
)
@click.option("--since", metavar="日期", help="起始购买日期（含），如 2024-01-01。")
@click.option("--until", metavar="日期", help="截止购买日期（含），如 2026-12-31。")
@format_option
def analysis_referrals(group_by, since, until, fmt) -> None:
    """老带新成交占比（套数与金额），与 DOMAIN.md 参考区间 30%–50% 对照并提示偏离的分组。"""
    from crm.plugins.analysis.referrals import referral_share

    start, end = parse_day(since, "起始日期"), parse_day(until, "截止日期")
    with get_app().session() as session:
        rows = referral_share(session, group_by, start, end)
    emit(rows, fmt, SHARE_COLUMNS)


@analysis.command("referrers")
@paging(20, "户")
@format_option
def analysis_referrers(limit, offset, fmt) -> None:
    """推荐成交最多的客户家庭（只显示客户编号与家庭名称，不含个人信息）。"""
    from crm.plugins.analysis.referrals import top_referrers

    with get_app().session() as session:
        rows = top_referrers(session, limit, offset)
    emit(rows, fmt, REFERRER_COLUMNS)


@analysis.command("chains")
@click.option(
    "--min-length",
    metavar="户数",
    type=click.IntRange(2),
    default=2,
    show_default=True,
    help="只看至少这么多户的推荐链（推荐人与被推荐人算 2 户）。",
)
@paging(20)
@format_option
def analysis_chains(min_length, limit, offset, fmt) -> None:
    """推荐链（甲推荐乙、乙又推荐丙……）：最长的链、链长分布与链上成交总额；遇循环即止。"""
    from crm.core.paging import Page
    from crm.core.render import to_json
    from crm.plugins.analysis.referrals import referral_chains

    with get_app().session() as session:
        result = referral_chains(session, min_length, limit, offset)
    if fmt == "json":
        click.echo(to_json(result))
        return
    rows = [
        {**row, "chain": "→".join(row["chain"]), "names": "→".join(row["names"])}
        for row in result["chains"]
    ]
    emit(Page(rows, result["total_chains"], offset, limit), fmt, CHAIN_COLUMNS)
    if fmt == "table":
        click.echo(f"\n推荐链共 {result['total_chains']} 条，链长分布：")
        emit(result["distribution"], fmt, DISTRIBUTION_COLUMNS)
    else:
        spread = "，".join(f"{d['length']} 户 {d['chains']} 条" for d in result["distribution"])
        click.echo(f"推荐链共 {result['total_chains']} 条：{spread or '无'}。", err=True)


def register(cli: click.Group) -> None:
    # Each part of the analysis keeps its commands in its own module and adds them here.
    from crm.plugins.analysis import propensity_commands

    propensity_commands.register(analysis)
    from crm.plugins.analysis import classify_commands

    classify_commands.register(analysis)
    from crm.plugins.analysis import segment_commands

    segment_commands.register(analysis)
    cli.add_command(analysis)
