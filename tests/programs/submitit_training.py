"""A program written for submitit, used unchanged by the tests of the ``as_submitit`` switch.

``python submitit_training.py CLUSTER FOLDER STEPS``: submits a checkpointable training (one
job, or ``--tasks N`` tasks), preempts it with ``job._interrupt()`` once it has made progress,
and prints its result as JSON. It knows nothing of jupyter_slurm_ckpt: it says ``import
submitit``, here and inside the job.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import submitit


class Training(submitit.helpers.Checkpointable):
    """Counts steps; each run records where it started and what the job environment said."""

    def __init__(self, steps: int, progress: str) -> None:
        self.steps = steps
        self.progress = progress
        self.step = 0
        self.runs: list = []

    def __call__(self) -> dict:
        import submitit  # the job's own import, as launchers and research code do

        env = submitit.JobEnvironment()
        self.runs.append(
            {
                "restart_count": env.restart_count,
                "resumed_at_step": self.step,
                "job_id": env.job_id,
                "global_rank": env.global_rank,
                "num_tasks": env.num_tasks,
                "submitit_module": submitit.__file__,
                "submitit_executor": submitit.AutoExecutor.__module__,
            }
        )
        while self.step < self.steps:
            self.step += 1
            if env.global_rank == 0:
                Path(self.progress).write_text(str(self.step))
            time.sleep(0.02)
        return {"step": self.step, "runs": self.runs, "submitit_files": submitit_files()}


def submitit_files() -> list:
    """Where this process's ``submitit`` modules come from."""
    return sorted(
        str(getattr(module, "__file__", None))
        for name, module in list(sys.modules.items())
        if name == "submitit" or name.startswith("submitit.")
    )


def steps_done(progress: Path) -> int:
    """The step the training reported last (0 before its first)."""
    try:
        return int(progress.read_text() or 0)
    except FileNotFoundError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cluster")
    parser.add_argument("folder")
    parser.add_argument("steps", type=int)
    parser.add_argument("--tasks", type=int, default=1)
    args = parser.parse_args()
    progress = Path(args.folder).absolute().parent / "progress.txt"
    executor = submitit.AutoExecutor(folder=args.folder, cluster=args.cluster)
    executor.update_parameters(timeout_min=10, tasks_per_node=args.tasks)
    job = executor.submit(Training(args.steps, str(progress)))
    while not job.done() and steps_done(progress) < 5:
        time.sleep(0.05)
    job._interrupt()
    result = job.results()[0]
    print(json.dumps({"result": result, "job_id": job.job_id, "submitit_files": submitit_files()}))


if __name__ == "__main__":
    main()
