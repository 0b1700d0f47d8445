"""The `crm scheduler` commands: the long-running scheduler process and its stored jobs.

APScheduler is imported inside scheduler.py's functions, so `crm --help` stays fast.
"""

from __future__ import annotations

import click

from crm.core.cliutil import emit, format_option, get_app


@click.group()
def scheduler() -> None:
    """定时任务：按排期执行营销活动、每天安排生命周期触点（任务保存在数据库中）。"""


@scheduler.command("run")
@click.option(
    "--for",
    "seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="运行多少秒后自动停止（用于试运行）；不写则一直运行，按 Ctrl-C 停止。",
)
@format_option
def scheduler_run(seconds: float | None, fmt: str) -> None:
    """启动调度程序：先按活动同步任务，再按时运行；日志写到标准错误，Ctrl-C 干净退出。"""
    import datetime as dt
    import logging

    from crm.core.clock import local_zone
    from crm.plugins.campaigns.scheduler import serve

    handler = logging.StreamHandler()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Log times in the business zone, like every time the CLI shows, not the server's zone.
    zone = local_zone()
    formatter.converter = lambda seconds: dt.datetime.fromtimestamp(seconds, zone).timetuple()
    handler.setFormatter(formatter)
    for name in ("crm.scheduler", "apscheduler"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        result = serve(get_app(), seconds)
    finally:
        for name in ("crm.scheduler", "apscheduler"):
            logging.getLogger(name).removeHandler(handler)
    emit(result.rows(), fmt, [("change", "启动时同步"), ("jobs", "任务")])


@scheduler.command("sync")
@format_option
def scheduler_sync(fmt: str) -> None:
    """按当前活动更新数据库中的任务（运行中的调度程序每 5 分钟也会自动同步）。"""
    from crm.plugins.campaigns.scheduler import sync_stored_jobs

    result = sync_stored_jobs(get_app())
    emit(result.rows(), fmt, [("change", "同步"), ("jobs", "任务")])


@scheduler.command("jobs")
@format_option
def scheduler_jobs(fmt: str) -> None:
    """列出数据库中保存的任务及下次运行时间（本地时间）。"""
    from crm.plugins.campaigns.scheduler import JOB_COLUMNS, list_jobs

    app = get_app()
    with app.session():  # checks the database is initialised and current first
        pass
    emit(list_jobs(app), fmt, JOB_COLUMNS)


def register(cli: click.Group) -> None:
    cli.add_command(scheduler)
