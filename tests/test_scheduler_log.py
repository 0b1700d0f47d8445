"""The scheduler's log in Chinese and local time (crm.core.schedlog): our own lines and every
message APScheduler's scheduler, executors and SQLAlchemy job store can write."""

from __future__ import annotations

import ast
import datetime as dt
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import apscheduler

from crm.core.schedlog import APSCHEDULER, ChineseLogFormatter

# The parts of APScheduler crm runs (crm.core.scheduler: a blocking or background scheduler,
# the thread-pool executor, the SQLAlchemy job store); the other stores and schedulers
# (MongoDB, Redis, asyncio, Qt …) never run here.
USED = ("schedulers/base.py", "executors/base.py", "executors/pool.py", "jobstores/sqlalchemy.py")
JOB = SimpleNamespace(id="sla_check", name="服务时限检查与升级")
UTC_MOMENT = dt.datetime(2026, 12, 2, 16, 20, tzinfo=dt.UTC)  # 2026-12-03 00:20 in Shanghai


def _templates() -> set[str]:
    """Every message APScheduler logs in the modules crm uses."""
    root = Path(apscheduler.__file__).parent
    found = set()
    for name in USED:
        for node in ast.walk(ast.parse((root / name).read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            levels = ("debug", "info", "warning", "error", "exception")
            if node.func.attr in levels and node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
    return found


def _line(name: str, level: int, msg: str, *args) -> str:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.created = UTC_MOMENT.timestamp()
    return ChineseLogFormatter().format(record)


def test_every_apscheduler_message_has_its_chinese():
    missing = _templates() - set(APSCHEDULER)
    assert not missing, f"APScheduler messages with no Chinese: {sorted(missing)}"


# Messages whose job arguments are ids or names (strings), not the Job itself.
BY_ID = {
    "Removed job %s": ("sla_check",),
    'Added job "%s" to job store "%s"': ("服务时限检查与升级", "default"),
    'Unable to restore job "%s" -- removing it': ("sla_check",),
    "Error running job %s": ("sla_check",),
    "Error getting due jobs from job store %r: %s": ("default", "数据库已关闭"),
    'Executor lookup ("%s") failed for job "%s" -- removing it from the job store': (
        "default",
        JOB,
    ),
    'Error submitting job "%s" to executor "%s"': (JOB, "default"),
}


def _arguments(template: str) -> tuple:
    """Plausible arguments for a template: the job where it names one, times and numbers."""
    if template in BY_ID:
        return BY_ID[template]
    args = []
    for match in re.finditer(r"%[srdf]", template):
        before = template[: match.start()]
        if match[0] == "%d":
            args.append(1)
        elif match[0] == "%f":
            args.append(3.5)
        elif "missed by" in before:
            args.append(dt.timedelta(seconds=75))
        elif before.endswith("at "):
            args.append(UTC_MOMENT)
        else:
            args.append(JOB)
    return tuple(args)


def test_every_apscheduler_line_reads_in_chinese_and_local_time(monkeypatch):
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    for template in sorted(APSCHEDULER):
        line = _line("apscheduler.scheduler", logging.WARNING, template, *_arguments(template))
        assert line.startswith("2026-12-03 00:20:00 警告 "), line
        words = re.findall(r"[A-Za-z]{3,}", line.replace("sla_check", ""))
        assert not words, line
        assert "+00:00" not in line and "UTC" not in line


def test_a_missed_run_names_the_job_and_how_late_in_local_time(monkeypatch):
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    line = _line(
        "apscheduler.executors.default",
        logging.WARNING,
        'Run time of job "%s" was missed by %s',
        JOB,
        dt.timedelta(seconds=75),
    )
    assert line == (
        "2026-12-03 00:20:00 警告 任务 “服务时限检查与升级”（sla_check）"
        "错过了预定的运行时间（晚了 1 分 15 秒），本次不再补跑"
    )
    running = _line(
        "apscheduler.executors.default", logging.INFO, 'Running job "%s" (scheduled at %s)',
        JOB, UTC_MOMENT,
    )  # fmt: skip
    assert running.endswith(
        "开始运行任务 “服务时限检查与升级”（sla_check）（预定 2026-12-03 00:20:00）"
    )
    # another zone, another clock
    monkeypatch.setenv("CRM_TIMEZONE", "Europe/London")
    assert _line("crm.scheduler", logging.INFO, "调度程序已停止").startswith(
        "2026-12-02 16:20:00 信息 调度程序已停止"
    )


def test_an_unknown_apscheduler_message_keeps_its_words_after_a_chinese_head():
    line = _line("apscheduler.scheduler", logging.ERROR, "Something new happened to %s", "x")
    assert line.endswith("错误 调度程序：Something new happened to x")


def test_scheduler_log_is_chinese_and_local(run, monkeypatch):
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    ran = run("scheduler", "run", "--for", "0.3")
    assert ran.exit_code == 0, ran.output
    lines = ran.stderr.strip().splitlines()
    assert lines and all(
        re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (信息|警告|错误) ", line) for line in lines
    ), lines
    assert not any(word in ran.stderr for word in ("INFO", "WARNING", "crm.scheduler", "UTC"))
    assert any("定时任务已同步" in line for line in lines)
    assert lines[-1].endswith("调度程序已停止")
