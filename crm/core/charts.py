"""What every PNG chart shares: a font with Chinese glyphs, when the machine has one.

matplotlib is imported inside the function, so `crm --help` never pays for it.
"""

from __future__ import annotations

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
