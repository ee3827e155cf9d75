"""How the views say numbers, durations and counts (shared by every rendering)."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """'1 timeout', '2 timeouts'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def format_count(value: float) -> str:
    """A step count: 1,200 for whole numbers, 3.25 otherwise."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def format_duration(seconds: float) -> str:
    """A short human duration: 0.4 s, 12 s, 3 min 04 s, 2 h 05 min, 1 d 03 h."""
    if seconds < 10:  # a short job's time to the tenth: "0.4 s", not "0 s"
        return f"{max(0.0, int(seconds * 10) / 10):.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def format_rate(rate: float) -> str:
    """'12.5/s', or '4.2 s each' when a step takes longer than a second."""
    if rate >= 1 or rate <= 0:
        return f"{rate:.3g}/s"
    return f"{1 / rate:.3g} s each"


def truncate(text: str, limit: int, keep: str = "start") -> str:
    """Shorten ``text`` to about ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep == "end":
        return f"… ({cut} characters cut)\n{text[-limit:]}"
    return f"{text[:limit]}… ({cut} characters cut)"
