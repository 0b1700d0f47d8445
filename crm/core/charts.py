"""What every PNG chart shares: one folder, the Agg backend, and a font with Chinese glyphs.

The font comes with the package: fonts/NotoSansSC-CRM.otf, a 1.5 MB subset of Noto Sans SC
(SIL Open Font License, fonts/OFL.txt) holding all of GB 2312, ASCII, Latin-1, the punctuation
and units Chinese text uses and every character in crm's own source (scripts/make_chart_font.py
says how it is made). So the charts read the same on a fresh install with no Chinese font. A
character outside the subset (a rare one in a project's name) is drawn from a Chinese font the
machine has, when it has one (matplotlib falls back glyph by glyph along the family list); a
character no font has is named in `note` instead of silently turning into a box.

matplotlib is imported inside the functions, so `crm --help` never pays for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from crm.core.errors import CrmError
from crm.core.outfiles import make_folder

FONT_FILE = Path(__file__).parent / "fonts" / "NotoSansSC-CRM.otf"
FONT_FAMILY = "Noto Sans SC CRM"
# Installed fonts with Chinese glyphs, tried for characters the bundled font lacks.
CJK_HINTS = ("CJK", "WenQuanYi", "Droid Sans Fallback", "Source Han", "SimHei", "YaHei", "PingFang")


def cjk_font() -> str | None:
    """The name of an installed font (not ours) that has Chinese glyphs, if any."""
    from matplotlib import font_manager

    names = sorted({font.name for font in font_manager.fontManager.ttflist} - {FONT_FAMILY})
    for hint in CJK_HINTS:
        for name in names:
            if hint.lower() in name.lower():
                return name
    return None


@cache
def _register() -> None:
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(FONT_FILE))


def families() -> list[str]:
    """The sans-serif family list the charts use: ours, a machine's Chinese font, DejaVu."""
    _register()
    system = cjk_font()
    return [FONT_FAMILY] + ([system] if system else []) + ["DejaVu Sans"]


@cache
def _charmap(family: str) -> frozenset[int]:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(
        font_manager.FontProperties(family=family), fallback_to_default=False
    )
    return frozenset(FT2Font(path).get_charmap())


def missing_glyphs(texts: Iterable[str], fonts: list[str] | None = None) -> list[str]:
    """The characters of `texts` that none of `fonts` (default: `families()`) can draw."""
    fonts = fonts if fonts is not None else families()
    maps = [_charmap(family) for family in fonts]
    missing = {
        ch
        for text in texts
        for ch in text
        if not ch.isspace() and not any(ord(ch) in charmap for charmap in maps)
    }
    return sorted(missing)


def figure_texts(figure) -> list[str]:
    """Every text drawn on `figure`: titles, axis labels, tick labels, legends, notes."""
    from matplotlib.text import Text

    return [t.get_text() for t in figure.findobj(Text) if t.get_visible() and t.get_text()]


class Charts:
    """Figures drawn for one folder; `note` names characters no font could draw."""

    def __init__(self, directory: Path, fonts: list[str]):
        self.directory = directory
        self.fonts = fonts
        self.missing: set[str] = set()

    @property
    def note(self) -> str | None:
        if not self.missing:
            return None
        return (
            f"图中这些字没有可用的字形，显示为方框：{'、'.join(sorted(self.missing))}；"
            "可安装 fonts-noto-cjk 后重新生成。"
        )

    def figure(self, width: float, height: float):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(figure)
        return figure

    def save(self, figure, name: str) -> Path:
        path = self.directory / name
        self.missing.update(missing_glyphs(figure_texts(figure), self.fonts))
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
    fonts = families()
    style = {"font.family": "sans-serif", "font.sans-serif": fonts, "axes.unicode_minus": False}
    with matplotlib.rc_context(style), warnings.catch_warnings():
        # A glyph missing from every font warns once per character; `note` names them instead.
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        yield Charts(directory, fonts)
