"""Build crm/core/fonts/NotoSansSC-CRM.otf, the font the PNG charts are drawn in.

A subset of Noto Sans SC Regular (SIL Open Font License 1.1, no reserved font name; the licence
ships beside the font as OFL.txt): every character of GB 2312 (6,763 hanzi, the kana, Greek,
Cyrillic and symbols of the standard), printable ASCII and Latin-1, the punctuation, arrows,
units and full-width forms Chinese text uses, and every non-ASCII character in the crm package's
source (titles, labels, demo project names). 1.5 MB instead of 8.3 MB for the full font; a
character outside it falls back to a CJK font the machine has, and a chart names any character
no font has (crm.core.charts.missing_glyphs).

    python scripts/make_chart_font.py path/to/NotoSansSC-Regular.otf

The full font comes from the noto-cjk project (Sans/SubsetOTF/SC), version 2.004 for the file
in the repository. Subsetting takes about a minute and a half.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "crm" / "core" / "fonts" / "NotoSansSC-CRM.otf"
FAMILY = "Noto Sans SC CRM"
RANGES = (
    (0x20, 0x7E),  # ASCII
    (0xA0, 0xFF),  # Latin-1: ¥ ² · × ÷ …
    (0x2010, 0x2027),  # dashes, quotes, ellipsis
    (0x2030, 0x203B),  # ‰ ′ ″ ※
    (0x20AC, 0x20AC),  # €
    (0x2103, 0x2103),  # ℃
    (0x2116, 0x2116),  # №
    (0x2190, 0x2199),  # arrows
    (0x2212, 0x2212),  # minus sign (axis labels)
    (0x2264, 0x2265),  # ≤ ≥
    (0x3000, 0x303F),  # CJK punctuation
    (0x33A1, 0x33A1),  # ㎡
    (0xFF01, 0xFF5E),  # full-width forms
)


def characters() -> set[str]:
    chars = {chr(code) for start, end in RANGES for code in range(start, end + 1)}
    for first in range(0xA1, 0xF8):
        for second in range(0xA1, 0xFF):
            try:
                chars.add(bytes((first, second)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    for source in (ROOT / "crm").rglob("*.py"):
        chars.update(ch for ch in source.read_text(encoding="utf-8") if ord(ch) > 0x7E)
    return {ch for ch in chars if ch.isprintable()}


def main() -> None:
    font = TTFont(sys.argv[1])
    options = subset.Options()
    options.layout_features = []  # CJK needs no shaping; kerning is not worth its size
    options.drop_tables += ["GSUB", "GPOS", "vhea", "vmtx", "VORG"]
    options.hinting = False
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(characters())))
    subsetter.subset(font)
    # A family name of its own: a full Noto Sans SC on the machine stays a separate font.
    names = font["name"]
    for record in names.names:
        if record.nameID in (1, 16):
            record.string = FAMILY
        elif record.nameID == 4:
            record.string = f"{FAMILY} Regular"
        elif record.nameID == 6:
            record.string = "NotoSansSC-CRM-Regular"
    font.save(TARGET)
    print(f"{TARGET}: {TARGET.stat().st_size:,} bytes, {len(font.getBestCmap()):,} characters")


if __name__ == "__main__":
    main()
