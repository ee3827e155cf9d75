"""Progress: what a running job reports, and how far a job got, read back for the views.

Inside a job, :func:`report_progress` appends a ``progress`` event to ``<id>_events.jsonl``
(``{"event": "progress", "run": 2, "step": 120, "total": 200}``), at most one a second per job
(:data:`MIN_INTERVAL_S`): a call that comes sooner is held, replaced by later ones, and written
when the interval is over, when the run ends and when a checkpoint signal comes, so the last
step reached is always recorded. Free-form fields (``report_progress(epoch=7)``) are events too:
the timeline and the checkpoint verification report show them.

For the views, :func:`progress_from_events` turns the ``step``/``total`` reports into a
:class:`Progress` (rate, time left, the step the current run resumed from), and
:func:`progress_from_log` reads the same from the last tqdm bar of a log, for jobs that report
nothing themselves.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .environment import ENV_FOLDER, JobEnvironment
from .events import append_event

_RESERVED = frozenset({"t", "event", "run"})
#: At most one progress event a second per job: a tight loop cannot flood the event log.
MIN_INTERVAL_S = 1.0
#: The rate is measured over the reports of the current run within this window.
RATE_WINDOW_S = 60.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def report_progress(step: float | None = None, total: float | None = None, **fields: Any) -> None:
    """Record how far the running job got: ``report_progress(step=120, total=200)``.

    With ``step`` (and ``total`` when known) the job widget, ``%slurm_jobs`` and the sidebar
    show a progress bar with the rate and the time left, continued across requeues: call it
    with the restored step right after loading a checkpoint, then as the loop goes. Free-form
    fields are kept too (``report_progress(step=i, total=n, loss=0.31)``, or alone:
    ``report_progress(epoch=7)``); values should be JSON-friendly (others are stored as their
    ``str``). Calling it every iteration is fine: at most one event a second is written, and
    the last one always is (at the end of the run, and when a checkpoint signal comes). Only
    the job's first task records; outside a job (a call run in the notebook) this does nothing.

    Parameters
    ----------
    step
        Steps done so far (a number: iterations, epochs, samples...).
    total
        Steps in all, when known (a positive number).
    **fields
        Anything else worth seeing in the timeline (loss, learning rate...).

    Raises
    ------
    ValueError
        If a field is named ``t``, ``event`` or ``run`` (the event's own keys), ``step`` or
        ``total`` is not a finite number, ``total`` is given without ``step``, or the fields do
        not fit in one line of the event log (about 3 kB as JSON; long text is shortened, but a
        long list is refused: report a summary of it).
    """
    clash = sorted(_RESERVED & set(fields))
    if clash:
        raise ValueError(f"report_progress: {', '.join(clash)} is reserved; use another name")
    if step is not None and not _is_number(step):
        raise ValueError(f"report_progress: step must be a number, not {step!r}")
    if total is not None and not (_is_number(total) and total > 0):
        raise ValueError(f"report_progress: total must be a positive number, not {total!r}")
    if total is not None and step is None:
        raise ValueError("report_progress: total needs a step (report_progress(step=i, total=n))")
    numbers = {key: value for key, value in (("step", step), ("total", total)) if value is not None}
    environment = JobEnvironment()
    # The job folder comes from the backend's environment: without it there is no log to add to.
    if not (numbers or fields) or ENV_FOLDER not in os.environ or environment.global_rank != 0:
        return
    record = {"t": round(time.time(), 3), "run": environment.restart_count, **numbers, **fields}
    _limiter.submit(environment.paths.events, record)


def flush_progress() -> None:
    """Write the progress reports held back by the rate limit (the worker calls this when a run
    ends and when a checkpoint signal comes)."""
    _limiter.flush()


class _RateLimiter:
    """At most one write per ``interval_s`` per run of a job; the latest held report wins.

    The first report of each run is written at once (it says where the run resumed); the
    debug backend runs every run of a job in one process, hence the run in the key.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        # Re-entrant: the checkpoint signal handler flushes, and may interrupt a submit.
        self._lock = threading.RLock()
        self._written_at: dict[tuple[Path, int], float] = {}
        self._held: dict[tuple[Path, int], dict[str, Any]] = {}
        self._timer: threading.Timer | None = None

    def submit(self, path: Path, record: dict[str, Any]) -> None:
        key = (path, int(record["run"]))
        with self._lock:
            now = time.monotonic()
            if now - self._written_at.get(key, -math.inf) >= self.interval_s:
                self._held.pop(key, None)
                self._write(key, record, now)
                return
            self._held[key] = record
            self._schedule(now)

    def flush(self) -> None:
        """Write every held report now."""
        with self._lock:
            held, self._held = self._held, {}
            for key, record in held.items():
                self._write(key, record, time.monotonic())

    def _schedule(self, now: float) -> None:
        """Wake up when the first held report is due (even if no call comes by then)."""
        if self._timer is not None or not self._held:
            return
        due = min(self._written_at[key] for key in self._held) + self.interval_s
        self._timer = threading.Timer(max(due - now, 0.0), self._write_due)
        self._timer.daemon = True
        self._timer.start()

    def _write_due(self) -> None:
        with self._lock:
            self._timer = None
            now = time.monotonic()
            for key in [k for k in self._held if now - self._written_at[k] >= self.interval_s]:
                self._write(key, self._held.pop(key), now)
            self._schedule(now)

    def _write(self, key: tuple[Path, int], record: dict[str, Any], now: float) -> None:
        # The event keeps the time of the call (``t`` in the record), not of the write.
        append_event(key[0], "progress", **record)
        self._written_at[key] = now


_limiter = _RateLimiter(MIN_INTERVAL_S)


# -- reading progress back ---------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """How far a job got: its latest step, and what follows from the reports before it."""

    step: float
    total: float | None = None
    #: The run (0 = the first) the latest report came from.
    run: int = 0
    #: Unix time of the latest report (None for a bar read from a log).
    at: float | None = None
    #: Steps per second in the current run (None until two reports tell).
    rate: float | None = None
    #: Seconds left at the time of the latest report.
    eta_s: float | None = None
    #: The step the current run started from, when it is a resumed run (run > 0).
    resumed_from: float | None = None
    #: tqdm's description of the bar (``desc=``).
    desc: str = ""
    #: The other fields of the latest report, as ``key=value`` words.
    details: str = ""
    #: ``"report"`` (report_progress) or ``"log"`` (the last tqdm bar of the job's log).
    source: str = "report"

    @property
    def fraction(self) -> float | None:
        """step / total, within [0, 1], when the total is known."""
        if not self.total:
            return None
        return min(max(self.step / self.total, 0.0), 1.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (for the server's job rows)."""
        return {
            "step": self.step,
            "total": self.total,
            "fraction": self.fraction,
            "run": self.run,
            "at": self.at,
            "rate": self.rate,
            "eta_s": self.eta_s,
            "resumed_from": self.resumed_from,
            "desc": self.desc,
            "details": self.details,
            "source": self.source,
        }


def _details(record: dict[str, Any]) -> str:
    extra = {k: v for k, v in record.items() if k not in ("t", "event", "run", "step", "total")}
    return ", ".join(f"{key}={value}" for key, value in extra.items())


def step_reports(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The progress events that carry a numeric ``step``, in order."""
    return [
        record
        for record in events
        if record.get("event") == "progress" and _is_number(record.get("step"))
    ]


def progress_from_events(events: Sequence[dict[str, Any]]) -> Progress | None:
    """The job's progress from its ``step``/``total`` reports, or None if it made none."""
    reports = step_reports(events)
    if not reports:
        return None
    last = reports[-1]
    run = int(last.get("run", 0))
    this_run = [record for record in reports if int(record.get("run", 0)) == run]
    step = float(last["step"])
    total = float(last["total"]) if _is_number(last.get("total")) and last["total"] > 0 else None
    at = float(last["t"])
    window = [record for record in this_run if float(record["t"]) >= at - RATE_WINDOW_S]
    first = window[0]
    rate = eta = None
    if at > float(first["t"]) and step >= float(first["step"]):
        rate = (step - float(first["step"])) / (at - float(first["t"]))
        if rate > 0 and total is not None:
            eta = max(total - step, 0.0) / rate
    return Progress(
        step=step,
        total=total,
        run=run,
        at=at,
        rate=rate,
        eta_s=eta,
        resumed_from=float(this_run[0]["step"]) if run > 0 else None,
        details=_details(last),
    )


# tqdm's right part: "90/200 [00:01<00:01, 89.50it/s, loss=0.3]" or "90it [00:01, 89.50it/s]".
_TQDM = re.compile(
    r"(?P<n>\d+(?:\.\d+)?[kMGTPEZY]?)(?:/(?P<total>\d+(?:\.\d+)?[kMGTPEZY]?))?(?P<unit>[^\s\[\]/]*)"
    r" ?\[(?P<elapsed>(?:\d+:)?\d+:\d\d)(?:<(?P<remaining>(?:\d+:)?\d+:\d\d|\?))?"
    r", *(?P<rate>[^,\]]*)(?P<postfix>[^\]]*)\]"
)
_BAR = re.compile(r"\s*\d{1,3}%\|.*$")
_SI = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}
_RATE = re.compile(r"(?P<num>\d+(?:\.\d+)?)(?P<si>[kMGTPEZY]?)(?P<per_second>.*/s)$")
_SECONDS_EACH = re.compile(r"(?P<num>\d+(?:\.\d+)?)s/\S+$")


def _si_number(text: str) -> float:
    suffix = text[-1] if text[-1] in _SI and not text[-1].isdigit() else ""
    return float(text[: len(text) - len(suffix)]) * _SI[suffix]


def _clock_seconds(text: str | None) -> float | None:
    if not text or text == "?":
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def _tqdm_rate(text: str) -> float | None:
    text = text.strip()
    match = _RATE.match(text)
    if match:
        return float(match["num"]) * _SI[match["si"]]
    match = _SECONDS_EACH.match(text)
    if match and float(match["num"]) > 0:
        return 1.0 / float(match["num"])
    return None  # "?it/s": not measured yet


def parse_tqdm(line: str) -> Progress | None:
    """The state of a tqdm bar from one rendered line of its output, or None if it is none."""
    matches = list(_TQDM.finditer(line))
    if not matches:
        return None
    match = matches[-1]
    prefix = _BAR.sub("", line[: match.start()]).strip()
    total = _si_number(match["total"]) if match["total"] else None
    step = _si_number(match["n"])
    rate = _tqdm_rate(match["rate"])
    eta = _clock_seconds(match["remaining"])
    if eta is None and rate and total is not None:
        eta = max(total - step, 0.0) / rate
    return Progress(
        step=step,
        total=total if total else None,
        rate=rate,
        eta_s=eta,
        desc=prefix[:-1].strip() if prefix.endswith(":") else prefix,
        details=match["postfix"].strip(" ,"),
        source="log",
    )


def progress_from_log(*texts: str) -> Progress | None:
    """The latest tqdm bar in the given log tails (terminal-rendered text; checked in order,
    each from its last line up), or None."""
    for text in texts:
        for line in reversed(text.splitlines()):
            progress = parse_tqdm(line)
            if progress is not None:
                return progress
    return None
