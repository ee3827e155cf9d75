"""One name per file: every file a job or the package writes is named by JobPaths or
PackagePaths (no other module spells a file name of the job folder)."""

from __future__ import annotations

from pathlib import Path

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.paths import JobPaths, PackagePaths

from .conftest import wait_running_run
from .jobs_for_tests import Counter


def _named(folder: Path, job_ids: list[str], num_tasks: int) -> set[Path]:
    """Every name JobPaths and PackagePaths give in ``folder`` for these jobs."""
    names: set[Path] = set()
    for job_id in job_ids:
        for task in range(num_tasks):
            paths = JobPaths(folder, job_id, task)
            names |= {
                paths.submitted_pickle, paths.result_pickle, paths.stdout, paths.stderr,
                paths.events, paths.info, paths.heartbeat, paths.signal_request,
                paths.local_process, paths.local_lock, paths.submission_file,
            }
    package = PackagePaths(folder)
    names |= {package.job_counter(cluster) for cluster in ("local", "debug", "slurm")}
    return names | {package.cells, package.verifications}


def test_every_file_of_a_requeued_local_job_and_an_array_has_its_name_from_the_paths(
    local: submitit.LocalExecutor,
) -> None:
    local.update_parameters(tasks_per_node=2)
    job = local.submit(Counter(step_s=0.05), 40)
    wait_running_run(job, 0)
    job._interrupt()  # signal request, checkpoint, requeue: every file a run can write
    assert job.result(timeout=120)["count"] == 40
    local.update_parameters(tasks_per_node=1)
    array = local.map_array(len, ["a", "bb"])
    assert [element.result(timeout=120) for element in array] == [1, 2]
    debug = submitit.DebugExecutor(local.folder).submit(len, "abc")
    assert debug.result() == 3
    ids = [job.job_id, *(element.job_id for element in array), debug.job_id]
    written = set(local.folder.iterdir())
    array_id = array[0].job_id.partition("_")[0]  # its launcher's record and lock
    assert written - _named(local.folder, [*ids, array_id], num_tasks=2) == set()
    assert JobPaths(local.folder, job.job_id).local_lock in written
    assert {JobPaths.job_id_of(path.name) for path in written} - {None} == set(ids)


def test_the_names_of_the_job_folder_beside_the_jobs(tmp_path: Path) -> None:
    package = PackagePaths.of(tmp_path / "jobs" / "%j")
    assert package.root == tmp_path / "jobs"
    assert package.job_counter("local") == tmp_path / "jobs" / ".local_job_counter"
    assert package.cell("ab12") == tmp_path / "jobs" / "cells" / "cell_ab12.py"
    assert package.verification("Net", "20260101") == tmp_path / "jobs" / "verify" / "Net-20260101"
    socket = PackagePaths.agent_socket(PackagePaths.agent_folder(tmp_path), "k3y")
    assert socket.name == "agent-k3y.sock" and socket.match(PackagePaths.AGENT_SOCKETS)
    assert JobPaths.job_id_of("L3_1_job.json") == "L3_1"
    assert JobPaths.job_id_of("L3_1_events.jsonl") is None
    assert JobPaths.job_id_of("../x_job.json") is None
    assert JobPaths(tmp_path, "12_3", 1).stderr == tmp_path / JobPaths.log_name("12_3", 1, "err")
