"""Large states: checkpointed, resumed and returned within the memory of one copy of them.

A real local job holds a state of :data:`STATE_BYTES` under an address-space limit
(``RLIMIT_AS``) that leaves room for the state once plus half of it again: no second copy of
the state fits, as under a tight ``--mem`` on a cluster. The limit is set inside the job, by an
object unpickled just before the state, so the payload's loading is under it too. The job is
preempted (``job._interrupt()``), writes its checkpoint, loads it in its next run and returns
the state as its result; the notebook side loads that result with no copy beyond the state.
A submission through ``%%slurm`` pickles its payload once.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from support import WAIT_S, AddressSpaceCap, cancel_leftover_jobs, wait_for

import jupyter_slurm_ckpt as submitit

MB = 1024**2
STATE_BYTES = 256 * MB
#: Address space the job may map beyond what it has when it starts loading its payload.
HEADROOM_BYTES = STATE_BYTES + STATE_BYTES // 2


class LargeState(submitit.Checkpointable):
    """Updates a large array until released; progress and the array survive checkpoints."""

    def __init__(self, nbytes: int) -> None:
        self.cap = AddressSpaceCap(HEADROOM_BYTES, ("numpy",))  # first: before the state
        self.state: Any = np.arange(nbytes // 8, dtype=np.float64)
        self.steps = 0
        self.starts: list[int] = []
        self.second_copy_refused: list[bool] = []

    def second_copy(self) -> Any:
        """A copy of the state (what must not fit beside it)."""
        return self.state.copy()

    def work(self) -> None:
        """One step of work on the state."""
        self.state[self.steps % 1024] += 1.0

    def __call__(self, folder: str) -> dict[str, Any]:
        self.starts.append(self.steps)
        try:
            copy = self.second_copy()
        except MemoryError:
            self.second_copy_refused.append(True)
        else:
            del copy
            self.second_copy_refused.append(False)
        run = submitit.JobEnvironment().restart_count
        Path(folder, f"run-{run}").write_text(str(self.steps))
        while not Path(folder, "release").exists():
            self.work()
            self.steps += 1
            time.sleep(0.002)
        return {
            "starts": self.starts,
            "steps": self.steps,
            "second_copy_refused": self.second_copy_refused,
            "state": self.state,
        }


def preempted_once(state: LargeState, nbytes: int, tmp_path: Path) -> Any:
    """Run ``state`` as a local job, preempt it once, release it; returns the job, ended,
    after checking that it checkpointed (more than ``nbytes``) and requeued once."""
    folder = tmp_path / "jobs"
    executor = submitit.LocalExecutor(folder)
    executor.max_pickle_size_gb = 1.0
    try:
        job = executor.submit(state, str(tmp_path))
        wait_for(lambda: (tmp_path / "run-0").exists(), "the first run", 2 * WAIT_S)
        wait_for(lambda: job.state == "RUNNING", "the job to run", WAIT_S)
        time.sleep(0.2)  # some progress to carry over
        job._interrupt()
        wait_for(lambda: (tmp_path / "run-1").exists(), "the run after the checkpoint", 3 * WAIT_S)
        (tmp_path / "release").write_text("")
        job.wait(3 * WAIT_S)
    finally:
        cancel_leftover_jobs(folder)
    checkpoints = [e for e in job.events() if e["event"] == "checkpoint"]
    assert [e["requeue"] for e in checkpoints] == [True], job.stderr()
    assert checkpoints[0]["bytes"] > nbytes
    return job


def check_resumed(result: dict[str, Any], tmp_path: Path) -> None:
    """Each run proved that a second copy of the state did not fit in the job, and the second
    run resumed from the checkpoint, not from the start."""
    assert result["second_copy_refused"] == [True, True]
    resumed_from = int((tmp_path / "run-1").read_text())
    assert result["starts"] == [0, resumed_from] and resumed_from > 0
    assert result["steps"] > resumed_from


def test_a_state_twice_too_big_for_the_job_is_checkpointed_resumed_and_returned(
    tmp_path: Path,
) -> None:
    job = preempted_once(LargeState(STATE_BYTES), STATE_BYTES, tmp_path)
    tracemalloc.start()
    try:
        result = job.result()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check_resumed(result, tmp_path)
    state = result["state"]
    assert state.nbytes == STATE_BYTES and state.flags.writeable
    expected = np.arange(STATE_BYTES // 8, dtype=np.float64)
    expected[:1024] += np.bincount(np.arange(result["steps"]) % 1024, minlength=1024)
    assert np.array_equal(state, expected)
    # The notebook side loads the result into the array's own memory, with no second copy.
    assert peak < STATE_BYTES + 16 * MB, f"loading the result peaked at {peak / MB:.0f} MiB"


def test_a_submission_pickles_its_payload_once(ipython: Any) -> None:
    ipython.run("%config SlurmMagics.max_payload_mb = 1024")
    ipython.run(
        f"""%%slurm --cluster local --no-widget
import numpy as np
reductions = []
class State:
    def __init__(self, nbytes):
        self.array = np.ones(nbytes // 8)
    def __reduce__(self):
        reductions.append(len(reductions))  # counts here, in the notebook
        return (rebuild, (self.array,))
def rebuild(array):
    state = State.__new__(State)
    state.array = array
    return state
def total(state):
    return float(state.array.sum())
job = total(State({64 * MB}))
"""
    )
    job = ipython.ns["job"]
    assert ipython.ns["reductions"] == [0]
    assert job.result(timeout=WAIT_S) == 64 * MB // 8
    submitted = next(e for e in job.events() if e["event"] == "submitted")
    assert submitted["bytes"] > 64 * MB
