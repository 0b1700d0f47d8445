"""What every PNG chart shares: one folder, the Agg backend, and a font with Chinese glyphs
when the machine has one (without one the charts are still written and the caller shows
`note` once).

matplotlib is imported inside the functions, so `crm --help` never pays for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crm.core.errors import CrmError
from crm.core.outfiles import make_folder

CJK_HINTS = ("CJK", "WenQuanYi", "Droid Sans Fallback", "Source Han", "SimHei", "YaHei", "PingFang")
NO_FONT = "未找到中文字体，图中的中文可能显示为方框；可安装 fonts-noto-cjk 后重新生成。"


def cjk_font() -> str | None:
    """The name of an installed font that has Chinese glyphs, if any."""
    from matplotlib import font_manager

    names = sorted({font.name for font in font_manager.fontManager.ttflist})
    for hint in CJK_HINTS:
        for name in names:
            if hint.lower() in name.lower():
                return name
    return None


class Charts:
    """Figures drawn for one folder; `note` tells the user when no Chinese font was found."""

    def __init__(self, directory: Path, font: str | None):
        self.directory = directory
        self.note = None if font else NO_FONT

    def figure(self, width: float, height: float):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(figure)
        return figure

    def save(self, figure, name: str) -> Path:
        path = self.directory / name
        try:
            figure.savefig(path, dpi=110)
        except OSError as exc:
            raise CrmError(f"无法写入图表 {path}：{exc.strerror}。") from None
        return path


@contextmanager
def charts(directory: Path) -> Iterator[Charts]:
    """Create `directory` and draw inside this block in the Chinese style."""
    import matplotlib

    matplotlib.use("Agg")
    make_folder(directory)
    font = cjk_font()
    style = {"font.family": "sans-serif", "axes.unicode_minus": False}
    if font:
        style["font.sans-serif"] = [font, "DejaVu Sans"]
    with matplotlib.rc_context(style), warnings.catch_warnings():
        # Without a CJK font every Chinese glyph warns; `note` says it once instead.
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        yield Charts(directory, font)
