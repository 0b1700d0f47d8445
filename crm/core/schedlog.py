"""The scheduler's log in Chinese and local time: the formatter of `crm scheduler run`.

Each line is the local time (CRM_TIMEZONE), the level in Chinese and the message. Our own lines
(logger crm.scheduler) are Chinese already. APScheduler's (logger apscheduler.*) are English
and name jobs by their repr and times in UTC, so each message it can write in the schedulers,
executors and SQLAlchemy job store crm uses is said again here from the record's own arguments
(APSCHEDULER, keyed by APScheduler's message template, copied verbatim from 3.x); a message not
known keeps APScheduler's words after "调度程序：". Tracebacks (a debug aid) stay as they are;
so do the names of APScheduler's one job store and executor ("default"), left out.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from crm.core.clock import local_zone, to_local

LEVELS = {"DEBUG": "调试", "INFO": "信息", "WARNING": "警告", "ERROR": "错误", "CRITICAL": "严重"}


def _job(job: Any) -> str:
    """A job as people read it: its name and the id `crm scheduler set` takes."""
    name, job_id = getattr(job, "name", None), getattr(job, "id", None)
    if name is not None and job_id is not None:
        return f"“{name}”（{job_id}）" if name != job_id else f"“{job_id}”"
    return f"“{job}”"


def _moment(value: Any) -> str:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return f"{to_local(moment):%Y-%m-%d %H:%M:%S}"
    return str(value)


def _late(value: Any) -> str:
    if not isinstance(value, dt.timedelta):
        return str(value)
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.0f} 秒"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} 分 {seconds} 秒" if minutes < 60 else f"{minutes / 60:.1f} 小时"


# APScheduler's message templates -> the line in Chinese, from the record's arguments.
APSCHEDULER: dict[str, Callable[..., str]] = {
    "Scheduler started": lambda: "调度程序已启动",
    "Scheduler has been shut down": lambda: "调度程序已关闭",
    "Paused scheduler job processing": lambda: "已暂停处理任务",
    "Resumed scheduler job processing": lambda: "已恢复处理任务",
    "Adding job tentatively -- it will be properly scheduled when the scheduler starts": (
        lambda: "任务已暂存，调度程序启动后排期"
    ),
    "Removed job %s": lambda job_id: f"已移除任务“{job_id}”",
    'Added job "%s" to job store "%s"': lambda name, _store: f"已加入任务“{name}”",
    "Error notifying listener": lambda: "通知任务事件的监听程序时出错",
    "Scheduler is paused -- not processing jobs": lambda: "调度程序已暂停，不处理任务",
    "Looking for jobs to run": lambda: "查找到期的任务",
    "Error getting due jobs from job store %r: %s": (
        lambda _store, error: f"读取任务表失败（{error}），稍后重试"
    ),
    'Executor lookup ("%s") failed for job "%s" -- removing it from the job store': (
        lambda _executor, job: f"找不到任务 {_job(job)}的执行器，已从任务表移除"
    ),
    'Execution of job "%s" skipped: maximum number of running instances reached (%d)': (
        lambda job, most: (
            f"任务 {_job(job)}的上一次运行尚未结束，本次跳过（同时最多运行 {most} 个）"
        )
    ),
    'Error submitting job "%s" to executor "%s"': (
        lambda job, _executor: f"任务 {_job(job)}交给执行器时出错"
    ),
    "Scheduler is paused; waiting until resume() is called": lambda: "调度程序已暂停，等待恢复",
    "No jobs; waiting until a job is added": lambda: "没有任务，等待加入任务",
    "Next wakeup is due at %s (in %f seconds)": (
        lambda at, seconds: f"下次唤醒在 {_moment(at)}（{seconds:.0f} 秒后）"
    ),
    'Unable to restore job "%s" -- removing it': lambda job_id: f"无法读取任务“{job_id}”，已移除",
    "Error running job %s": lambda job_id: f"任务“{job_id}”运行出错",
    'Run time of job "%s" was missed by %s': (
        lambda job, late: (
            f"任务 {_job(job)}错过了预定的运行时间（晚了 {_late(late)}），本次不再补跑"
        )
    ),
    'Running job "%s" (scheduled at %s)': (
        lambda job, at: f"开始运行任务 {_job(job)}（预定 {_moment(at)}）"
    ),
    'Job "%s" raised an exception': lambda job: f"任务 {_job(job)}出错",
    'Job "%s" executed successfully': lambda job: f"任务 {_job(job)}运行完毕",
    "Process pool is broken; replacing pool with a fresh instance": (
        lambda: "进程池已损坏，已换用新的进程池"
    ),
}


def message(record: logging.LogRecord) -> str:
    """The record's message in Chinese (see the module's docstring)."""
    if not record.name.startswith("apscheduler"):
        return record.getMessage()
    say = APSCHEDULER.get(record.msg) if isinstance(record.msg, str) else None
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    if say is not None:
        try:
            return say(*args)
        except (TypeError, ValueError):  # another APScheduler's arguments: its own words
            pass
    return f"调度程序：{record.getMessage()}"


class ChineseLogFormatter(logging.Formatter):
    """`2026-12-03 00:20:00 警告 任务“服务时限检查与升级”（sla_check）错过了…`."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, local_zone())
        line = f"{when:%Y-%m-%d %H:%M:%S} {LEVELS.get(record.levelname, record.levelname)} "
        line += message(record)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line
