"""``%slurm_jobs`` over a folder of thousands of jobs, in a real ``InteractiveShell``.

2,000 ended jobs written with the package's own writers (``tests/many_jobs.py``; 5% of them
killed without a word, their end never recorded) and a local job that really runs: the table
counts every job by state, shows the newest ``--limit`` and re-attaches any job by its id; the
filters narrow it; a job killed without a word gets its end recorded once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from many_jobs import build_ended_jobs
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.catalog import JobCatalog
from jupyter_slurm_ckpt.views.listing import JobTable

JOBS = 2_000
WAIT_S = 60.0


@pytest.fixture
def many(tmp_path: Path) -> Any:
    folder = tmp_path / "slurm_jobs"
    built = build_ended_jobs(folder, JOBS, arrays=4, array_size=100, lost=0.05, now=time.time())
    executor = submitit.LocalExecutor(folder)
    executor.update_parameters(name="live")
    live = executor.submit(time.sleep, 600)
    wait_for(lambda: live.state == "RUNNING", "the live job to run", WAIT_S)
    yield folder, built, live
    live.cancel()


def test_every_job_counted_the_newest_shown_any_reattached(ipython: Any, many: Any) -> None:
    folder, built, live = many
    table = ipython.run(f"%slurm_jobs --folder {folder}")
    assert isinstance(table, JobTable) and len(table) == JOBS + 1
    # The jobs killed without a word were found dead and their end recorded (FAILED).
    lost = built.ids["LOST"]
    assert lost and all(submitit.Job(folder, job_id).summary().terminal for job_id in lost)
    states = {entry.key.job_id: entry.final_state for entry in JobCatalog().jobs([folder])}
    expected = {state: sum(s == state for s in states.values()) for state in set(states.values())}
    assert table.counts == {**{k: v for k, v in expected.items() if k}, "RUNNING": 1}
    assert [s.job_id for s in table.statuses][-1] == live.job_id  # the newest, shown last
    assert len(table.statuses) == 50
    text = repr(table)
    assert f"{JOBS + 1:,} jobs: " in text and "the newest 50 shown, 1,951 more" in text
    assert len(text.splitlines()) < 60 and len(table._repr_html_()) < 100_000
    oldest = min(states, key=lambda job_id: int(job_id[1:].split("_")[0]))
    assert table[oldest].job_id == oldest and table[oldest].state == states[oldest]
    assert table[live.job_id].state == "RUNNING"


def test_filters_narrow_the_table(ipython: Any, many: Any) -> None:
    folder, _, _ = many
    entries = JobCatalog().jobs([folder])
    timeouts = {e.key.job_id for e in entries if e.final_state == "TIMEOUT" and "sweep" in e.name}
    table = ipython.run(f"%slurm_jobs --folder {folder} --state timeout --name SWEEP --limit 5")
    assert set(table) == timeouts and len(table.statuses) == min(5, len(timeouts))
    assert {s.state for s in table.statuses} == {"TIMEOUT"}
    assert "(state TIMEOUT, name contains 'sweep')" in repr(table)
    array = next(job_id for job_id in table.select() if "_" in job_id).partition("_")[0]
    assert len(table.select(text=array)) == 100  # every element of the array
    assert list(table.select(text=f"{array}_7")) == [f"{array}_7"]
    assert len(table.select(state="FAILED,TIMEOUT", limit=0).statuses) == 0
    with pytest.raises(UsageError, match="--limit must be 0 or more"):
        ipython.run(f"%slurm_jobs --folder {folder} --limit -1")
