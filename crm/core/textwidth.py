"""How wide text is on a terminal, and line wrapping for mixed Chinese and ASCII text.

A Chinese character takes two columns (wcwidth measures it, with combining marks and other
zero-width characters as none); Python's len() and the standard textwrap count one, which is why
click's help misaligned and overflowed. Lines may break between two Chinese characters or at a
space, never inside an ASCII word, number or code ("revisit" stays whole), and punctuation keeps
to its side: "、" and "）" never start a line, "（" never ends one. Only a word wider than the
whole line is cut.

Latin, Chinese and their punctuation are measured from the East Asian Width property; wcwidth
(imported on first need) measures the rest: combining marks, zero-width characters, emoji.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

# Punctuation that may not start a line (it belongs to what comes before) or end one.
NO_LINE_START = frozenset("，。、；：！？）》」』】〉〕”’…%‰℃,.;:!?)]}")
NO_LINE_END = frozenset("（《「『【〈〔“‘([{")


def display_width(text: str) -> int:
    """Terminal columns `text` takes: a Chinese character two, a combining mark none."""
    if text.isascii():
        return len(text)
    total = 0
    for ch in text:
        width = _plain_width(ch)
        if width is None:
            return _wcwidth(text)
        total += width
    return total


# Marks, format and control characters and separators: left to wcwidth; so are the symbol
# blocks holding emoji or whose widths changed in recent Unicode versions (technical and
# miscellaneous symbols, dingbats, arrows and shapes, the Yijing hexagrams).
WCWIDTH_CATEGORIES = frozenset(("Mn", "Mc", "Me", "Cf", "Cc", "Zl", "Zp"))
WCWIDTH_SYMBOLS = ((0x2300, 0x2BFF), (0x3000, 0x303F), (0x3200, 0x32FF), (0x4DC0, 0x4DFF))


def _plain_width(ch: str) -> int | None:
    """The width of a character whose width the East Asian Width property settles (Latin,
    Chinese, punctuation, full-width forms); None for what needs wcwidth's tables: combining
    and zero-width characters, Hangul jamo, emoji and their sequences. Spares `crm --help` and
    most tables the ~35 ms of importing wcwidth."""
    code = ord(ch)
    if code < 0x300:
        return 1
    if code >= 0x1F000 or 0x1100 <= code <= 0x11FF or 0xD7B0 <= code <= 0xD7FF:
        return None
    category = unicodedata.category(ch)
    if code in (0x3164, 0xFFA0) or category in WCWIDTH_CATEGORIES:
        return None
    if category == "So" and any(low <= code <= high for low, high in WCWIDTH_SYMBOLS):
        return None
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _wcwidth(text: str) -> int:
    from wcwidth import wcswidth, wcwidth

    width = wcswidth(text)
    if width >= 0:
        return width
    # A control character (the renderer escapes them before measuring; this is a fallback).
    return sum(max(wcwidth(ch), 0) for ch in text)


def _pieces(text: str) -> Iterator[str]:
    """Runs that stay on one line: spaces, a run of narrow non-space characters (a word, a
    number, a code such as 2026-12-02 or view_personal), or one wide character."""
    run = ""
    kind = ""
    for ch in text:
        this = "space" if ch.isspace() else ("wide" if display_width(ch) == 2 else "narrow")
        if run and (this != kind or this == "wide"):
            yield run
            run = ""
        run += ch
        kind = this
    if run:
        yield run


def tokens(text: str) -> list[str]:
    """The pieces of `text` between which a line may break (a token of spaces is a break that
    is dropped at the end of a line)."""
    out: list[str] = []
    opening = ""  # punctuation waiting for the piece it opens
    for piece in _pieces(text):
        if piece.isspace():
            if opening:
                out.append(opening)
                opening = ""
            out.append(piece)
            continue
        piece = opening + piece
        opening = ""
        if piece[0] in NO_LINE_START and out and not out[-1].isspace():
            out[-1] += piece
        else:
            out.append(piece)
        if piece[-1] in NO_LINE_END:
            opening = out.pop()
    if opening:
        out.append(opening)
    return out


# Where a word too long for the line is best cut: after a separator in it (a list of numbers
# "161,195,217", a path, a code with dashes) rather than anywhere.
CUT_AFTER = frozenset(",;/-_|")


def _cut(word: str, width: int) -> tuple[str, str]:
    """The head of `word` that fits `width` columns (at least one character), ending after a
    separator when one falls in its second half."""
    used = 0
    end = len(word)
    for index, ch in enumerate(word):
        used += display_width(ch)
        if used > width:
            end = max(index, 1)
            break
    else:
        return word, ""
    separator = max((i + 1 for i in range(end) if word[i] in CUT_AFTER), default=0)
    if separator > end // 2:
        end = separator
    return word[:end], word[end:]


def shorten(text: str, width: int, mark: str = "…") -> str:
    """`text` cut to `width` columns with `mark` at the end (unchanged if it fits)."""
    if display_width(text) <= width:
        return text
    room = width - display_width(mark)
    head = ""
    for ch in text:
        if display_width(head + ch) > room:
            break
        head += ch
    return head.rstrip() + mark


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns; a newline in `text` starts a new line.
    Always at least one line (an empty one for empty text)."""
    width = max(width, 2)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, used, space = "", 0, ""
        for token in tokens(paragraph):
            if token.isspace():
                if line:
                    space = token
                continue
            size = display_width(token)
            gap = display_width(space) if line else 0
            if used + gap + size <= width:
                line, used, space = line + (space if line else "") + token, used + gap + size, ""
                continue
            if line:
                lines.append(line)
            line, used, space = "", 0, ""
            while size > width:
                head, token = _cut(token, width)
                lines.append(head)
                size = display_width(token)
            line, used = token, size
        lines.append(line)
    return lines


def longest_token(text: str) -> int:
    """The width of the widest piece of `text` that wrapping keeps on one line."""
    return max((display_width(t) for t in tokens(text) if not t.isspace()), default=0)


def join_lines(lines: list[str]) -> str:
    """Lines of one paragraph as one: a space between them, except between two Chinese
    characters, where a space would be read as one."""
    out = ""
    for line in (line.strip() for line in lines):
        if not line:
            continue
        if out and not (display_width(out[-1]) == 2 and display_width(line[0]) == 2):
            out += " "
        out += line
    return out


def fill(
    text: str,
    width: int,
    initial_indent: str = "",
    subsequent_indent: str = "",
    preserve_paragraphs: bool = False,
) -> str:
    """click's `wrap_text` measured in terminal columns and breaking as `wrap` does: blank
    lines separate paragraphs, a paragraph's first-line indent is kept for the whole of it,
    and a paragraph starting with a line holding only \\b is kept as written."""
    if not preserve_paragraphs:
        return _fill_one(join_lines(text.splitlines()), width, initial_indent, subsequent_indent)
    paragraphs: list[tuple[int, bool, str]] = []
    block: list[str] = []
    indent = 0

    def flush() -> None:
        if block:
            if block[0].strip() == "\b":
                paragraphs.append((indent, True, "\n".join(block[1:])))
            else:
                paragraphs.append((indent, False, join_lines(block)))
            block.clear()

    for line in text.expandtabs().splitlines():
        if not line.strip():
            flush()
            continue
        if not block:
            indent = len(line) - len(line.lstrip())
        block.append(line)
    flush()
    out = []
    for extra, raw, paragraph in paragraphs:
        first, rest = initial_indent + " " * extra, subsequent_indent + " " * extra
        if raw:
            out.append("\n".join(first + line for line in paragraph.splitlines()))
        else:
            out.append(_fill_one(paragraph, width, first, rest))
    return "\n\n".join(out)


def _fill_one(text: str, width: int, first: str, rest: str) -> str:
    lines = wrap(text, width - max(display_width(first), display_width(rest)))
    return "\n".join(
        ((first if index == 0 else rest) + line).rstrip() for index, line in enumerate(lines)
    )
