"""`crm shell` (also `crm desk`): the commands of a working day in one process."""

from __future__ import annotations

import sys

import click


@click.command("shell")
@click.option(
    "--no-history",
    is_flag=True,
    help="不读取也不保存命令历史（历史默认保存在用户数据目录的 shell_history，仅本人可读）。",
)
@click.option(
    "-e",
    "--exit-on-error",
    is_flag=True,
    help="从管道或文件读取命令时，一条命令失败即停止，并以它的退出码退出。",
)
@click.pass_context
def shell(ctx: click.Context, no_history: bool, exit_on_error: bool) -> None:
    """工作台：启动一次，连续输入 crm 命令，数据库与插件只加载一次。

    每行一条 crm 命令（开头的 crm 可省略，引号的用法与 shell 相同），输出、错误信息和
    在命令行上运行时一样，出错后继续。写在 shell 前面的 --db 与 --as 对会话中的每条命令
    有效。Tab 补全命令、选项、客户编号与登记号；命令历史保存在用户数据目录。exit、quit
    或 Ctrl-D 退出，Ctrl-C 取消当前输入。

    标准输入不是终端时（管道或重定向），逐行读取并执行，不显示提示符，可用于脚本；
    退出码是最后一条命令的退出码。
    """
    from crm.commands.desk import Desk, lines_of, stdin_is_terminal
    from crm.core.startup import resume_collection

    # A session lasts all day: collect garbage from now on, even before the first command
    # reaches the database (which is where a one-off command's start-up ends).
    resume_collection()
    root = ctx.find_root()
    desk = Desk(root.command, root.obj)
    try:
        if stdin_is_terminal():
            from crm.commands.prompt import interactive

            code = interactive(desk, history=not no_history)
        else:
            code = desk.piped(lines_of(sys.stdin), exit_on_error)
    finally:
        desk.close()
    ctx.exit(code)


desk = click.Command(
    "desk",
    callback=shell.callback,
    params=list(shell.params),
    help="同 crm shell：工作台，启动一次，连续输入 crm 命令。",
)


def register(cli: click.Group) -> None:
    cli.add_command(shell)
    cli.add_command(desk)
