"""`crm server start|stop|status`: the desk server that cuts every command's start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

START_WAIT_SECONDS = 60.0


@click.group("server")
def server() -> None:
    """工作台服务：常驻后台，预先加载程序，让每条 crm 命令启动更快（约 0.1 秒）。

    服务运行时，本机本用户运行的 crm 命令交给它执行：结果、提示、退出码与身份（CRM_USER、
    CRM_DATABASE_URL 等环境变量）都与直接运行相同。shell、scheduler 仍在自己的进程中运行。
    程序升级后服务自动停止，需重新启动；空闲超过 --idle-hours 小时也自动停止。
    设置 CRM_NO_SERVER=1 可让单条命令不经服务运行。
    """


def _paths() -> tuple[str, str]:
    """The server's socket and log file."""
    if not hasattr(os, "fork"):
        from crm.core.errors import CrmError

        raise CrmError("工作台服务需要能复制进程的系统（Linux、macOS）；在此每条命令各自运行。")
    from crm.forkserver import log_path
    from crm.launch import socket_path

    path = socket_path()
    return path, log_path(path)


@server.command("start")
@click.option(
    "--idle-hours",
    metavar="小时数",
    type=click.FloatRange(min=0.01),
    default=12.0,
    show_default=True,
    help="空闲多少小时后自动停止。",
)
def start(idle_hours: float) -> None:
    """在后台启动工作台服务（已在运行时只报告其进程号）。"""
    path, log = _paths()
    from crm.core.errors import CrmError
    from crm.forkserver import running_pid
    from crm.launch import private_folder

    pid = running_pid(path)
    if pid:
        click.echo(f"工作台服务已在运行（进程 {pid}），套接字 {path}。")
        return
    if not private_folder(path, create=True):
        raise CrmError(f"{os.path.dirname(path)} 不是仅当前用户可用的文件夹，未启动工作台服务。")
    with open(log, "a", encoding="utf-8") as out:
        # -P: the working directory is not put on the import path, and the server starts in
        # its own folder, so files written where `start` ran neither shadow a module nor look
        # like an installed package changing (which stops the server).
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "crm.forkserver", "--idle-hours", str(idle_hours)],
            cwd=os.path.dirname(path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by the terminal's Ctrl-C or hang-up
        )
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CrmError(f"工作台服务未能启动（退出码 {process.returncode}），详见 {log}。")
        if os.path.exists(path) and running_pid(path) == process.pid:
            click.echo(f"工作台服务已启动（进程 {process.pid}），套接字 {path}，日志 {log}。")
            return
        time.sleep(0.05)
    process.terminate()
    raise CrmError(f"工作台服务 {START_WAIT_SECONDS:.0f} 秒内未就绪，已停止，详见 {log}。")


@server.command("stop")
def stop() -> None:
    """停止工作台服务（正在执行的命令会执行完）。"""
    path, _log = _paths()
    import signal

    from crm.forkserver import running_pid

    pid = running_pid(path)
    if not pid:
        click.echo("工作台服务未在运行。")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while running_pid(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running_pid(path):
        from crm.core.errors import CrmError

        raise CrmError(f"工作台服务（进程 {pid}）10 秒内未停止。")
    click.echo(f"工作台服务（进程 {pid}）已停止。")


@server.command("status")
def status() -> None:
    """工作台服务是否在运行，及其进程号、套接字与日志文件。"""
    path, log = _paths()
    from crm.forkserver import running

    found = running(path)
    if found:
        pid, served = found
        click.echo(
            f"工作台服务运行中（进程 {pid}），已执行 {served:,} 条命令；套接字 {path}，日志 {log}。"
        )
    else:
        click.echo("工作台服务未在运行（crm server start 启动）。")


def register(cli: click.Group) -> None:
    cli.add_command(server)
