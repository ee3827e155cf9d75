"""Events larger than one line of the event log: stored shortened or refused, in bounded time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import WAIT_S

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.events import MAX_LINE_BYTES, append_event, read_events


class Opaque:
    """A value JSON does not know: stored as its ``str``, which is long."""

    def __str__(self) -> str:
        return "opaque " * 2000


def _report(**fields: Any) -> str:
    """Run in the job: report the fields and say what happened."""
    try:
        submitit.report_progress(**fields)
    except ValueError as error:
        return f"refused: {error}"
    return "stored"


def test_a_large_list_is_refused_at_the_call_and_the_job_ends(
    local: submitit.LocalExecutor,
) -> None:
    # Before the fix the event writer looped forever shortening the only string left ("event"):
    # the job never ended and result() timed out.
    job = local.submit(_report, losses=[0.123456789] * 2000)
    answer = job.result(timeout=WAIT_S)
    assert answer.startswith("refused: ")
    assert "losses" in answer and str(MAX_LINE_BYTES) in answer
    assert [e for e in job.events() if e["event"] == "progress"] == []


def test_long_text_and_long_str_values_are_stored_shortened(
    local: submitit.LocalExecutor,
) -> None:
    job = local.submit(_report, note="x" * 20_000, thing=Opaque(), epoch=3)
    assert job.result(timeout=WAIT_S) == "stored"
    (progress,) = [e for e in job.events() if e["event"] == "progress"]
    assert progress["epoch"] == 3
    assert progress["note"].startswith("xxx") and progress["note"].endswith("…")
    assert progress["thing"].startswith("opaque ") and progress["thing"].endswith("…")
    line = next(ln for ln in job.paths.events.read_text().splitlines() if '"progress"' in ln)
    assert len(line.encode()) <= MAX_LINE_BYTES


def test_the_event_name_and_time_are_never_shortened(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    record = append_event(path, "progress", **{f"field_{i}": "y" * 40 for i in range(60)})
    (stored,) = read_events(path)
    assert stored["event"] == "progress" and stored["t"] == record["t"]
    assert len(json.dumps(stored).encode()) <= MAX_LINE_BYTES


def test_too_many_fields_are_refused_with_the_largest_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with pytest.raises(ValueError, match="largest field 'numbers'"):
        append_event(path, "progress", numbers=list(range(3000)), label="z")
    assert not path.exists()  # nothing half-written
