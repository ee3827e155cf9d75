"""A log tail as a terminal shows it: the one implementation behind every log view.

Jobs write for terminals: tqdm redraws its bar with ``\\r``, some tools erase with ``\\b`` or the
clear-line escape (``ESC[K``), many colour their output (ANSI SGR codes). :func:`emulate` replays
such output on a small virtual screen, so a log tail shows the latest progress line once
(not one copy per redraw), and :class:`Screen` renders it as plain text (colours stripped) or
as HTML (colours as inline styles, everything escaped). :func:`read_tail` reads only the end of
a file. The widget, the saved text/HTML output and the server's log endpoint (for the sidebar)
all use this module. It imports nothing of IPython or Jupyter.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from os import PathLike

DEFAULT_LINES = 20
DEFAULT_MAX_BYTES = 16_384
#: Raw lines replayed before the ones kept: room for cursor-up moves (tqdm's nested bars).
_CURSOR_MARGIN = 8

# A plain-text run, one control character, a CSI sequence (ESC [ parameter and intermediate
# bytes, final byte), an OSC sequence (ESC ] ... BEL or ESC \), or any other escape.
_TOKEN = re.compile(
    r"(?P<text>[^\x00-\x1f\x7f]+)"
    r"|\x1b\[(?P<csi>[ -?]*)(?P<final>[@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b.?"
    r"|[\x00-\x1f\x7f]",
    re.DOTALL,
)

# JupyterLab's own ANSI palette (normal, then bright): readable on light and dark themes.
_PALETTE = (
    "#3e424d", "#e75c58", "#00a250", "#ddb62b", "#208ffb", "#d160c4", "#60c6c8", "#c5c1b4",
    "#282c36", "#b22b31", "#007427", "#b27d12", "#0065ca", "#a03196", "#258f8f", "#a1a6b2",
)  # fmt: skip


@dataclass(frozen=True)
class Style:
    """The SGR attributes of a run of text; colours are CSS colours or None (default)."""

    fg: str | None = None
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    inverse: bool = False

    def css(self) -> str:
        """The inline CSS of this style ("" for the default style)."""
        fg, bg = (self.bg, self.fg) if self.inverse else (self.fg, self.bg)
        if self.inverse:  # swapped defaults: the page's background on its text colour
            fg, bg = fg or "var(--jp-layout-color0, #fff)", bg or "currentColor"
        parts = []
        if fg:
            parts.append(f"color:{fg}")
        if bg:
            parts.append(f"background-color:{bg}")
        if self.bold:
            parts.append("font-weight:bold")
        if self.dim:
            parts.append("opacity:0.7")
        if self.italic:
            parts.append("font-style:italic")
        if self.underline:
            parts.append("text-decoration:underline")
        return ";".join(parts)


PLAIN = Style()
Run = tuple[str, Style]


@dataclass(frozen=True)
class Screen:
    """What a terminal shows: lines of styled runs (trailing blanks dropped)."""

    lines: tuple[tuple[Run, ...], ...] = ()

    @property
    def text(self) -> str:
        """The lines as plain text, colours stripped."""
        return "\n".join("".join(text for text, _ in line) for line in self.lines)

    @property
    def html(self) -> str:
        """The lines as HTML for a ``<pre>``: text escaped, colours as inline styles."""
        return "\n".join(
            "".join(_run_html(text, style) for text, style in line) for line in self.lines
        )

    def last(self, count: int) -> Screen:
        """The last ``count`` lines."""
        return Screen(self.lines[-count:] if count > 0 else ())


def _run_html(text: str, style: Style) -> str:
    css = style.css()
    escaped = html.escape(text, quote=False)
    return f'<span style="{css}">{escaped}</span>' if css else escaped


class _Terminal:
    """A cursor over growing lines of (character, style) cells."""

    def __init__(self) -> None:
        self.chars: list[list[str]] = [[]]
        self.styles: list[list[Style]] = [[]]
        self.row = 0
        self.col = 0
        self.style = PLAIN

    def write(self, text: str) -> None:
        chars, styles = self.chars[self.row], self.styles[self.row]
        if len(chars) < self.col:  # the cursor was moved past the end: pad with blanks
            gap = self.col - len(chars)
            chars.extend(" " * gap)
            styles.extend([PLAIN] * gap)
        end = self.col + len(text)
        chars[self.col : end] = text
        styles[self.col : end] = [self.style] * len(text)
        self.col = end

    def newline(self) -> None:
        self.row += 1
        self.col = 0
        if self.row == len(self.chars):
            self.chars.append([])
            self.styles.append([])

    def move_rows(self, delta: int) -> None:
        self.row = max(0, self.row + delta)
        while self.row >= len(self.chars):
            self.chars.append([])
            self.styles.append([])

    def erase_line(self, mode: int) -> None:
        chars, styles = self.chars[self.row], self.styles[self.row]
        if mode == 0:  # cursor to the end
            del chars[self.col :], styles[self.col :]
        elif mode == 1:  # start to the cursor (inclusive)
            upto = min(self.col + 1, len(chars))
            chars[:upto] = " " * upto
            styles[:upto] = [PLAIN] * upto
        else:  # the whole line; the cursor stays where it is
            chars.clear()
            styles.clear()

    def csi(self, params: str, final: str) -> None:
        if params.strip("0123456789;"):  # private modes ("?25l"), intermediates: no meaning here
            return
        numbers = [int(p) if p else 0 for p in params.split(";")] if params else []
        count = max(numbers[0], 1) if numbers else 1
        if final == "m":
            self.style = _apply_sgr(self.style, numbers or [0])
        elif final == "K":
            self.erase_line(numbers[0] if numbers else 0)
        elif final == "A":
            self.move_rows(-count)
        elif final == "B":
            self.move_rows(count)
        elif final == "C":
            self.col += count
        elif final == "D":
            self.col = max(0, self.col - count)
        elif final == "G":
            self.col = count - 1
        # Anything else (screen clears, scroll regions, modes) has no meaning in a log tail.

    def screen(self) -> Screen:
        lines = []
        for chars, styles in zip(self.chars, self.styles):
            end = len(chars)
            while end and chars[end - 1] == " " and styles[end - 1] == PLAIN:
                end -= 1  # tqdm pads a shorter redraw with blanks
            lines.append(_runs(chars[:end], styles[:end]))
        while lines and not lines[-1]:
            lines.pop()  # the empty line after the last newline
        return Screen(tuple(lines))


def _runs(chars: list[str], styles: list[Style]) -> tuple[Run, ...]:
    runs: list[Run] = []
    start = 0
    for index in range(1, len(chars) + 1):
        if index == len(chars) or styles[index] != styles[start]:
            runs.append(("".join(chars[start:index]), styles[start]))
            start = index
    return tuple(runs)


def _color_256(index: int) -> str | None:
    if 0 <= index < 16:
        return _PALETTE[index]
    if 16 <= index < 232:
        index -= 16
        cube = (index // 36, index // 6 % 6, index % 6)
        levels = [0 if value == 0 else 55 + value * 40 for value in cube]
        return "#{:02x}{:02x}{:02x}".format(*levels)
    if 232 <= index < 256:
        gray = 8 + (index - 232) * 10
        return f"#{gray:02x}{gray:02x}{gray:02x}"
    return None


def _extended_color(codes: list[int], at: int) -> tuple[str | None, int]:
    """A ``38;5;n`` or ``38;2;r;g;b`` colour starting at ``codes[at]`` (the 5 or 2)."""
    if at < len(codes) and codes[at] == 5 and at + 1 < len(codes):
        return _color_256(codes[at + 1]), at + 2
    if at < len(codes) and codes[at] == 2 and at + 3 < len(codes):
        red, green, blue = (min(max(value, 0), 255) for value in codes[at + 1 : at + 4])
        return f"#{red:02x}{green:02x}{blue:02x}", at + 4
    return None, len(codes)  # malformed: ignore the rest of the sequence


def _apply_sgr(style: Style, codes: list[int]) -> Style:
    fields = style.__dict__.copy()
    index = 0
    while index < len(codes):
        code = codes[index]
        index += 1
        if code == 0:
            fields = PLAIN.__dict__.copy()
        elif code in (1, 2, 3, 4, 7):
            fields[{1: "bold", 2: "dim", 3: "italic", 4: "underline", 7: "inverse"}[code]] = True
        elif code == 22:
            fields["bold"] = fields["dim"] = False
        elif code in (23, 24, 27):
            fields[{23: "italic", 24: "underline", 27: "inverse"}[code]] = False
        elif 30 <= code <= 37 or 90 <= code <= 97:
            fields["fg"] = _PALETTE[code - 30 if code < 90 else code - 82]
        elif 40 <= code <= 47 or 100 <= code <= 107:
            fields["bg"] = _PALETTE[code - 40 if code < 100 else code - 92]
        elif code in (39, 49):
            fields["fg" if code == 39 else "bg"] = None
        elif code in (38, 48):
            color, index = _extended_color(codes, index)
            if color is not None:  # a malformed colour changes nothing
                fields["fg" if code == 38 else "bg"] = color
    return Style(**fields)


def emulate(raw: str, lines: int | None = None) -> Screen:
    """Replay terminal output: ``\\r``, ``\\b``, ``\\n``, ``ESC[K``, cursor moves, SGR colours.

    Parameters
    ----------
    raw
        The output as written (e.g. the end of a log file).
    lines
        Keep only the last ``lines`` lines (only those, and a few before them, are replayed).
    """
    if lines is not None:
        raw_lines = raw.split("\n")
        if len(raw_lines) > lines + _CURSOR_MARGIN:
            raw = "\n".join(raw_lines[-(lines + _CURSOR_MARGIN) :])
    terminal = _Terminal()
    for match in _TOKEN.finditer(raw):
        first = match.group()[0]
        if match.group("text"):
            terminal.write(match.group("text"))
        elif first == "\n":
            terminal.newline()
        elif first == "\r":
            terminal.col = 0
        elif first == "\b":
            terminal.col = max(0, terminal.col - 1)
        elif first == "\t":
            terminal.write(" " * (8 - terminal.col % 8))
        elif match.group("final"):
            terminal.csi(match.group("csi") or "", match.group("final"))
        # Other control characters and escapes (bell, OSC titles) show nothing.
    screen = terminal.screen()
    return screen if lines is None else screen.last(lines)


def read_tail(
    path: str | PathLike[str], lines: int = DEFAULT_LINES, max_bytes: int = DEFAULT_MAX_BYTES
) -> Screen:
    """The last ``lines`` lines of a log as a terminal shows them, reading at most ``max_bytes``
    from its end; an empty screen when the file cannot be read."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, 2)
            size = stream.tell()
            stream.seek(max(0, size - max_bytes))
            chunk = stream.read(max_bytes)
    except OSError:
        return Screen()
    text = chunk.decode("utf-8", errors="replace")
    if size > max_bytes:
        # The seek cut a line (maybe a character or an escape): start at the next line start,
        # or at the next carriage return, from where a redraw (tqdm's) covers the line again.
        cut = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=-1)
        if cut >= 0:
            text = text[cut + 1 :]
    return emulate(text, lines)
