"""The `crm scheduler` commands: the long-running scheduler process, its stored jobs and how
often each runs. The library is crm.core.scheduler; APScheduler is imported inside its
functions, so `crm --help` stays fast."""

from __future__ import annotations

import click

from crm.core.cliutil import argument, emit, emit_record, format_option, get_app, paging

SYNC_COLUMNS = [("change", "同步"), ("job_names", "任务")]
SYNC_JSON_COLUMNS = [("change", "同步"), ("jobs", "任务"), ("job_names", "任务名称")]
SET_LABELS = [
    ("id", "任务"),
    ("name", "名称"),
    ("setting", "设置项"),
    ("old", "原值"),
    ("new", "新值"),
    ("schedule", "排期"),
    ("next_run", "下次运行（本地时间）"),
]


@click.group()
def scheduler() -> None:
    """定时任务：时限检查、客情预警、协调调度、生命周期触点与营销活动按排期自动运行（任务保存在数据库中）。"""


@scheduler.command("run")
@click.option(
    "--for",
    "seconds",
    metavar="秒数",
    type=click.FloatRange(min=0, min_open=True),
    help="运行多少秒后自动停止（用于试运行）；不写则一直运行，按 Ctrl-C 停止。",
)
@format_option
def scheduler_run(seconds: float | None, fmt: str) -> None:
    """启动调度程序：先同步任务，再按时运行全部任务；日志写到标准错误，Ctrl-C 干净退出。"""
    import logging

    from crm.core.schedlog import ChineseLogFormatter
    from crm.core.scheduler import serve

    handler = logging.StreamHandler()
    # Times in the business zone, like every time the CLI shows, not the server's zone; the
    # level and APScheduler's own messages in Chinese.
    handler.setFormatter(ChineseLogFormatter())
    # Our own lines say what each job did; APScheduler's say only what goes wrong (a run
    # missed beyond its grace, …), not "Running job …" around every run.
    levels = {"crm.scheduler": logging.INFO, "apscheduler": logging.WARNING}
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        result = serve(get_app(), seconds)
    finally:
        for name in levels:
            logging.getLogger(name).removeHandler(handler)
    columns = SYNC_JSON_COLUMNS if fmt == "json" else SYNC_COLUMNS
    emit(result.rows(), fmt, [("change", "启动时同步"), *columns[1:]])


@scheduler.command("sync")
@format_option
def scheduler_sync(fmt: str) -> None:
    """按各插件当前的任务与排期设置更新数据库中的任务（运行中的调度程序也会定时自动同步）。"""
    from crm.core.scheduler import sync_stored_jobs

    result = sync_stored_jobs(get_app())
    emit(result.rows(), fmt, SYNC_JSON_COLUMNS if fmt == "json" else SYNC_COLUMNS)


@scheduler.command("jobs")
@paging(None)
@format_option
def scheduler_jobs(limit, offset, fmt: str) -> None:
    """列出数据库中保存的任务：名称、排期、下次运行时间（本地时间）、设置项与所需权限。"""
    from crm.core.paging import window
    from crm.core.scheduler import JOB_COLUMNS, JOB_JSON_COLUMNS, job_table

    app = get_app()
    with app.session():  # checks the database is initialised and current first
        pass
    table = job_table(app)
    emit(window(table.rows, limit, offset), fmt, JOB_JSON_COLUMNS if fmt == "json" else JOB_COLUMNS)
    if table.unsynced:
        click.echo(
            f"尚未写入数据库的任务：{table.named(table.unsynced)}；"
            "运行 crm scheduler sync 或启动 crm scheduler run 后生效。",
            err=True,
        )
    if table.stale:
        click.echo(
            f"已不再提供、下次同步时移除的任务：{table.named(table.stale)}。",
            err=True,
        )


@scheduler.command("set")
@argument("job", "任务编号")
@argument("value", "排期", required=False)
@click.option("--default", "reset", is_flag=True, help="恢复该任务的默认排期。")
@format_option
def scheduler_set(job: str, value: str | None, reset: bool, fmt: str) -> None:
    """修改任务的排期（经理、管理员）：排期写间隔如 10m、每天时刻如 07:30，或 cron 如 "0 7 * * 1-5"。"""
    from crm.core.db import transaction
    from crm.core.errors import CrmError
    from crm.core.scheduler import job_table, set_schedule, sync_stored_jobs

    if reset == (value is not None):
        raise CrmError(
            "请给出新的排期（如 10m、07:30 或 cron 表达式），或用 --default 恢复默认，二者选一。"
        )
    app = get_app()
    with app.session() as session, transaction(session):
        record = set_schedule(session, job, value)
    sync_stored_jobs(app)
    row = next((r for r in job_table(app).rows if r["id"] == record["id"]), {})
    record["next_run"] = row.get("next_run")
    emit_record(record, fmt, SET_LABELS)
    click.echo(
        "已写入数据库：运行中的调度程序无需重启，至迟在下次同步任务时按新排期运行。", err=True
    )


def register(cli: click.Group) -> None:
    cli.add_command(scheduler)
