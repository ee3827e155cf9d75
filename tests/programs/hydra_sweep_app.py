"""A hydra app swept with hydra-submitit-launcher (``-m +task=1,2,3``), for the preemption test.

Each job records where it runs (``marker_<task>_<restart>.json``: its job id and folder, as
``submitit.JobEnvironment()`` says), then waits for the ``gate`` file so that the test can preempt
it while it runs, and writes ``result_<task>.json``. The launcher checkpoints by resubmitting the
same call: a preempted job runs again from its start.
"""

import json
import time
from pathlib import Path

import hydra
import submitit


@hydra.main(version_base=None, config_path=None)
def main(cfg) -> int:
    env = submitit.JobEnvironment()
    shared = Path(cfg.shared)
    where = {"job_id": env.job_id, "folder": str(env.paths.folder), "task": cfg.task}
    (shared / f"marker_{cfg.task}_{env.restart_count}.json").write_text(json.dumps(where))
    deadline = time.monotonic() + 300
    while not (shared / "gate").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    result = {**where, "restart_count": env.restart_count}
    (shared / f"result_{cfg.task}.json").write_text(json.dumps(result))
    return cfg.task * 10


if __name__ == "__main__":
    main()
