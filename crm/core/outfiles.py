"""Files a command writes where the user says (-o/--output, --rejects, --chart): missing folders
are made first, as most users expect of `-o reports/2026/list.csv`, and a file appears whole or
not at all. Every command that writes a file goes through here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crm.core.errors import CrmError


def make_folder(folder: Path) -> Path:
    """Create `folder` and its parents if missing; one sentence if that cannot be done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CrmError(f"无法创建文件夹 {folder}：已有同名文件。") from None
    except OSError as exc:
        raise CrmError(f"无法创建文件夹 {folder}：{exc.strerror}。") from None
    return folder


@contextmanager
def output_file(path: Path) -> Iterator[Path]:
    """A path beside `path` for the block to write; it takes the name `path` when the block
    ends and is removed if the block fails, so no half-written file is left behind (a file
    already there keeps its content). Write errors are one sentence."""
    path = Path(path)
    if path.is_dir():
        raise CrmError(f"{path} 是文件夹：请给出文件名，例如 {path / 'export.csv'}。")
    make_folder(path.parent)
    part = path.with_name(f"{path.name}.part")
    try:
        yield part
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise CrmError(f"无法写入文件 {path}：{exc.strerror}。") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
