"""Log tails read like a terminal: tqdm's redraws, erases, cursor moves and ANSI colours.

The log text comes from the real tqdm (a test dependency) where a bar is involved.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import tqdm

from jupyter_slurm_ckpt.views.terminal import emulate, read_tail

BAR = re.compile(r"train: +\d+%\|")


def tqdm_output(steps: int, **options: object) -> str:
    """What a tqdm loop of ``steps`` steps writes to its file (a redraw per step)."""
    stream = io.StringIO()
    for _ in tqdm.tqdm(range(steps), file=stream, mininterval=0, desc="train", **options):
        pass
    return stream.getvalue()


def test_a_tqdm_loop_is_one_line_with_its_last_state() -> None:
    raw = "loading data\n" + tqdm_output(200) + "done\n"
    assert raw.count("\r") > 200  # one redraw per step

    screen = emulate(raw)

    lines = screen.text.splitlines()
    assert lines[0] == "loading data" and lines[-1] == "done"
    bars = [line for line in lines if BAR.match(line)]
    assert len(bars) == 1 and "200/200" in bars[0]
    assert not bars[0].endswith(" "), "tqdm's blank padding is trimmed"


def test_a_bar_mid_run_shows_its_latest_step() -> None:
    stream = io.StringIO()
    bar = tqdm.tqdm(total=200, file=stream, mininterval=0, desc="train")
    bar.update(57)
    bar.update(63)  # 120 of 200, not closed: no newline yet

    assert [line for line in emulate(stream.getvalue()).text.splitlines() if BAR.match(line)] == [
        emulate(stream.getvalue()).text
    ]
    assert "120/200" in emulate(stream.getvalue()).text


def test_backspace_erase_and_cursor_moves() -> None:
    assert emulate("abc\b\bXY\n").text == "aXY"
    assert emulate("\b\bstart\n").text == "start"  # never before the first column
    assert emulate("downloading 10%\r\x1b[Kdone\n").text == "done"
    assert emulate("keep this\x1b[4D\x1b[0Kend\n").text == "keep end"
    assert emulate("one two three\x1b[6D\x1b[1K\n").text == "        three"
    assert emulate("0123456789\x1b[2Kafter\n").text == "          after"  # cursor stays put
    # tqdm's nested bars: the inner one redraws the line above with cursor-up.
    assert emulate("outer 1\ninner 1\x1b[A\router 2\x1b[B\rinner 2\n").text == "outer 2\ninner 2"
    assert emulate("a\tb\n").text == "a       b"
    assert emulate("\x1b]0;window title\x07shown\x07 text\n").text == "shown text"
    assert emulate("crlf\r\nline\r\n").text == "crlf\nline"


def test_colours_render_as_styles_in_html_and_vanish_from_text() -> None:
    raw = (
        "\x1b[31mred\x1b[0m plain \x1b[1;32mbold green\x1b[22;39m back"
        "\x1b[38;5;208m orange\x1b[38;2;1;2;3m rgb\x1b[0m"
        "\x1b[7m inverse\x1b[27m \x1b[4munder\x1b[24m\n"
    )
    screen = emulate(raw)

    assert screen.text == "red plain bold green back orange rgb inverse under"
    page = screen.html
    assert '<span style="color:#e75c58">red</span> plain ' in page
    assert '<span style="color:#00a250;font-weight:bold">bold green</span> back' in page
    assert '<span style="color:#ff8700"> orange</span>' in page
    assert '<span style="color:#010203"> rgb</span>' in page
    assert "text-decoration:underline\">under</span>" in page
    assert "background-color:currentColor" in page  # inverse video
    assert "\x1b" not in page


def test_html_is_escaped_and_odd_codes_are_harmless() -> None:
    raw = (
        '\x1b[31m<script>alert("x")</script>&\x1b[38;2;999;-1m\x1b[38;5m\x1b[99;1000m<b>'
        "\x1b[?25l\x1b[38;2;999;0;0m clamped\n"
    )

    page = emulate(raw).html

    assert page == (
        '<span style="color:#e75c58">&lt;script&gt;alert("x")&lt;/script&gt;&amp;&lt;b&gt;</span>'
        '<span style="color:#ff0000"> clamped</span>'
    )


def test_the_tail_reads_only_the_end_of_a_huge_log(tmp_path: Path) -> None:
    # 8 GiB (sparse): reading it whole would exhaust the memory of the test machine.
    log = tmp_path / "huge.log"
    with open(log, "wb") as stream:
        stream.truncate(8 << 30)
        stream.seek(0, 2)
        stream.write(b"\nline 1\nline 2\n" + tqdm_output(200).encode())

    text = read_tail(log, lines=3).text

    assert text.splitlines()[:2] == ["line 1", "line 2"]
    assert BAR.match(text.splitlines()[2]) and "200/200" in text


def test_one_endless_line_of_redraws_still_shows_its_last_state(tmp_path: Path) -> None:
    # A bar that never printed a newline: 5000 redraws, far more than the bytes read.
    stream = io.StringIO()
    bar = tqdm.tqdm(total=5000, file=stream, mininterval=0, desc="train")
    for _ in range(4321):
        bar.update(1)
    log = tmp_path / "job.err"
    log.write_text(stream.getvalue())
    assert log.stat().st_size > 16_384

    screen = read_tail(log, lines=5, max_bytes=16_384)

    assert len(screen.lines) == 1 and "4321/5000" in screen.text
    assert read_tail(tmp_path / "missing").text == ""
