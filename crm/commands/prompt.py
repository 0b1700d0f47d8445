"""The `crm>` prompt of `crm shell` at a terminal: prompt-toolkit's line editor with history
and completion around crm.commands.desk.Desk (a piped script never loads this module)."""

from __future__ import annotations

import os
from pathlib import Path

import click
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory

from crm.commands.desk import Desk, Leave

PROMPT = "crm> "
HISTORY_FILE = "shell_history"


class DeskCompleter(Completer):
    """prompt-toolkit's view of Desk.completions."""

    def __init__(self, desk: Desk):
        self.desk = desk

    def get_completions(self, document: Document, complete_event: CompleteEvent):
        for text, start, meta in self.desk.completions(document.text_before_cursor):
            yield Completion(text, start_position=start, display_meta=meta or None)


def interactive(desk: Desk, history: bool = True) -> int:
    """Read and run lines until exit, quit or Ctrl-D; Ctrl-C cancels the line being typed.
    Returns the last command's exit code."""
    from crm.core.db import resolve_url, safe_url

    kept = FileHistory(str(history_file())) if history else InMemoryHistory()
    prompt = PromptSession(history=kept, completer=DeskCompleter(desk))
    click.echo(
        f"crm 工作台：{safe_url(resolve_url(desk.state.db))}。输入 crm 的命令（开头的 crm "
        "可省略）；Tab 补全命令、选项、客户编号与登记号；help 列出全部命令；exit、quit 或 "
        "Ctrl-D 退出，Ctrl-C 取消当前输入。"
    )
    code = 0
    while True:
        try:
            line = prompt.prompt(PROMPT)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            result = desk.run(line)
        except Leave:
            break
        except KeyboardInterrupt:
            click.echo("已中断。", err=True)
            result = 130
        if result is not None:
            code = result
    return code


def history_file() -> Path:
    """The prompt's history, in the user's data dir: readable by its owner only, as lines typed
    there may hold phone numbers."""
    from crm.core.db import data_dir

    path = data_dir() / HISTORY_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path
