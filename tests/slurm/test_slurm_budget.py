"""The checkpoint budget on a real cluster: a checkpoint cut off by KillWait warns in the widget.

Issue 22, item 6, on a stock cluster (``cluster.sh start --preemption stock``, KillWait=5): the
only notice of a preemption is the SIGTERM at the end of the grace time, and the state takes 8 s
to pickle, so the run is SIGKILLed in the middle of its checkpoint. Slurm requeues the job, its
next run records the run that ended without a word, and the widget says what happened.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from slurm_jobs_for_tests import SlowToPickle
from support import wait_for
from test_slurm_termination import WAIT_S, events, preempt, running
from test_widget_helpers import watcher_fixture  # noqa: F401  (as watcher)

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.views.watcher import Watcher
from jupyter_slurm_ckpt.views.widget import JobWidget

pytestmark = pytest.mark.slurm


def test_a_checkpoint_killed_after_killwait_warns_in_the_widget(
    executor: submitit.AutoExecutor, gate: Path, slurm_cluster: Any, watcher: Watcher
) -> None:
    if slurm_cluster.preemption != "stock":
        pytest.skip(
            "the SIGTERM path: on this cluster (preempt_send_user_signal) a preemption warns "
            "with USR2 first; CI runs this test in its stock-cluster pass"
        )
    executor.update_parameters(slurm_exclusive=True)  # the preemptor takes the node whole
    job = executor.submit(SlowToPickle(pickle_s=8.0), str(gate), 3)
    running(job, 0)
    assert job.info.kill_wait_s == 5.0  # read from Slurm's configuration at the submission
    widget = JobWidget(job, watcher=watcher)
    high = preempt(job)
    try:
        running(job, 1)
    finally:
        subprocess.run(["scancel", high], check=False)
    wait_for(lambda: "before its checkpoint was written" in widget.counters, "the warning", WAIT_S)
    assert (
        "the run was killed before its checkpoint was written (the SIGTERM leaves 5 s "
        "(KillWait=5, margin 0.5 s))" in widget.counters
    )
    (signalled,) = events(job, "signal")
    assert (signalled["reason"], signalled.get("via")) == ("preemption", "SIGTERM")
    assert events(job, "checkpoint") == []  # killed before it was written
    (lost,) = events(job, "requeued")
    assert lost["reason"] == "unknown" and lost["lost_progress"] is True
    gate.touch()
    result = job.result(timeout=WAIT_S)
    # The second run started from the submitted state: nothing of the first one was kept.
    assert (result["runs"], result["resumed_from"]) == ([1], [0])
    widget.close()
