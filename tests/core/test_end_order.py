"""A job reads as ended only once the event that says how it ended is there.

A task renames its result file into place a moment before it appends its end event
(``completed``/``failed``). A reader that looked in that moment used to call the job ended:
``wait()`` returned and ``events()`` had no end yet (seen as 1 run in 4 under load, in three
tests that read the events right after ``wait()``). The moment is made to last here: the job's
process is alive and holds a result file written by the test, as the worker's rename leaves
it, with no end event yet.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.events import append_event

from .jobs_for_tests import wait_file


def test_a_result_without_its_end_event_is_not_the_end_while_the_job_lives(tmp_path: Path) -> None:
    release = tmp_path / "release"
    job = submitit.LocalExecutor(tmp_path / "jobs").submit(wait_file, str(release))
    wait_for(lambda: job.state == "RUNNING", "the job to run")
    payload.dump(("success", "from the rename"), job.paths.result_pickle)

    assert not job.done() and job.state == "RUNNING"
    with pytest.raises(TimeoutError):
        job.wait(timeout=0.3)

    append_event(job.paths.events, "completed", task=0)
    assert job.done() and job.state == "COMPLETED"
    assert job.result(timeout=0) == "from the rename"
    assert job.events()[-1]["event"] == "completed"
    release.touch()  # the process ends; its own result replaces the test's


def test_a_result_whose_end_event_never_came_ends_with_its_process(tmp_path: Path) -> None:
    # The worker died between the rename and the event (or the disk refused the event): once
    # no process of the job is left, the result itself tells the end.
    job = submitit.LocalExecutor(tmp_path / "jobs").submit(wait_file, str(tmp_path / "never"))
    wait_for(lambda: job.state == "RUNNING", "the job to run")
    payload.dump(("success", "the last word"), job.paths.result_pickle)
    os.killpg(job._process()["pid"], signal.SIGKILL)  # controller and worker, without a word
    wait_for(job.done, "the job to end with its process")
    assert job.state == "COMPLETED" and job.result(timeout=0) == "the last word"
