"""A job array's payloads: one file, what the elements share pickled once, each element its own.

Real local jobs and real files: the number of files a submission creates (inodes), what an
element's job loads, its own checkpoint, its re-attach from another process, its resubmission.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import array_payload, payload
from jupyter_slurm_ckpt.core.errors import FailedSubmissionError, PayloadError

from .conftest import wait_running_run
from .jobs_for_tests import Counter, add, fail, wait_file


class Scaled:
    """A callable that keeps a table; elements get the same table as an argument."""

    def __init__(self, table: list[int]) -> None:
        self.table = table

    def __call__(self, x: int, table: list[int]) -> tuple[int, bool]:
        return x * len(self.table), table is self.table


def _files(folder: Path) -> dict[int, str]:
    """The files of ``folder``, by inode (the names of one file: a few of them)."""
    found: dict[int, str] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            found.setdefault(path.stat().st_ino, path.name)
    return found


def test_a_large_array_adds_a_few_files_not_three_per_element(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    executor = local
    executor.update_parameters(slots=1)
    release = folder.parent / "release"
    first = executor.submit(wait_file, str(release))  # holds the only slot: the array waits
    wait_running_run(first, 0)
    before = _files(folder)
    jobs = executor.map_array(add, range(300), range(300))
    new = {name for inode, name in _files(folder).items() if inode not in before}
    # One payload file and one description for the 300 elements, the launcher's record, lock
    # and log: a handful, where a file per element would be 300 (and was 900).
    assert len(new) <= 6, sorted(new)
    element = jobs[123].paths
    assert element.submitted_pickle.stat().st_nlink == 300
    assert element.info.stat().st_nlink == 300
    assert jobs[123].info.job_id == jobs[123].job_id and jobs[123].info.array_size == 300
    assert not element.events.exists()  # the array's description records the submission
    assert [e["event"] for e in jobs[123].events()] == ["submitted"]
    assert jobs[123].events()[0]["array_size"] == 300
    assert jobs[123].submission().args == (123, 123)
    release.touch()
    assert first.result(timeout=60) == "released"
    assert [job.result(timeout=120) for job in jobs[:5]] == [0, 2, 4, 6, 8]
    assert jobs[299].result(timeout=120) == 598


def test_what_an_element_shares_with_the_callable_stays_shared(
    local: submitit.LocalExecutor,
) -> None:
    table = [1, 2, 3]
    jobs = local.map_array(Scaled(table), [1, 2], [table, table])
    assert [job.result(timeout=60) for job in jobs] == [(3, True), (6, True)]
    # As each element's own pickle: one element's arguments never refer to another's.
    loaded = [job.submission() for job in jobs]
    assert loaded[0].args[1] is not loaded[1].args[1]
    assert loaded[0].args[1] is loaded[0].function.table


def _same(a: object, b: object) -> bool:
    return a is b


def test_what_an_elements_arguments_share_among_themselves_stays_shared(
    local: submitit.LocalExecutor,
) -> None:
    # Each element's own objects, referenced twice: its part of the file refers back to its
    # own memo entries, after the shared part's (hydra's launcher sweeps do this).
    configs = [{"task": i, "tags": ["a", "b"]} for i in range(3)]
    jobs = local.map_array(_same, configs, configs)
    assert [job.result(timeout=60) for job in jobs] == [True, True, True]
    assert [job.submission().args[0]["task"] for job in jobs] == [0, 1, 2]


def test_an_element_checkpoints_into_its_own_file(local: submitit.LocalExecutor) -> None:
    calls = [submitit.DelayedSubmission(Counter(step_s=0.05), 10_000) for _ in range(2)]
    jobs = local.submit_array(calls)  # two callables: nothing shared but the file
    shared = jobs[1].paths.submitted_pickle.stat().st_ino
    assert [job.submission().args for job in jobs] == [(10_000,), (10_000,)]
    wait_running_run(jobs[0], 0)
    jobs[0]._interrupt()
    wait_running_run(jobs[0], 1)
    assert jobs[0].paths.submitted_pickle.stat().st_ino != shared  # replaced, not written into
    assert jobs[1].paths.submitted_pickle.stat().st_ino == shared
    assert jobs[1].submission().function.count == 0  # the other element's payload is intact
    jobs[0].cancel()
    jobs[1].cancel()


def test_one_elements_failure_is_its_own(local: submitit.LocalExecutor) -> None:
    jobs = local.map_array(fail, ["first", "second", "third"])
    for job, word in zip(jobs, ["first", "second", "third"]):
        with pytest.raises(submitit.FailedJobError, match=word):
            job.result(timeout=60)
    ok = local.map_array(add, [1, 2], [10, 20])
    assert [job.result(timeout=60) for job in ok] == [11, 22]


def test_an_element_reattaches_from_another_process(local: submitit.LocalExecutor) -> None:
    jobs = local.map_array(add, [1, 2, 3], [1, 1, 1])
    jobs[2].wait(timeout=60)
    code = (
        "import jupyter_slurm_ckpt as s, sys; j = s.Job(sys.argv[1], sys.argv[2]);"
        "print(j.state, j.result(), j.submission().args, j.info.job_id)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(jobs[2].paths.folder), jobs[2].job_id],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["COMPLETED", "4", "(3,", "1)", jobs[2].job_id]


def test_an_element_that_never_ran_is_resubmitted_with_its_own_arguments(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    executor = local
    executor.update_parameters(array_parallelism=1)
    release = folder.parent / "release"
    jobs = executor.map_array(wait_file, [str(release), str(folder / "never")])
    jobs[1].cancel()  # before it ever started: its payload is still the array's file
    release.touch()
    assert jobs[0].result(timeout=60) == "released"
    again = jobs[1].resubmit()
    assert again.submission().args == (str(folder / "never"),)
    own = again.paths.submitted_pickle.stat().st_ino
    assert own != jobs[1].paths.submitted_pickle.stat().st_ino  # a file of its own
    again.cancel()


def test_a_resubmitted_element_keeps_the_versions_that_pickled_it(
    local: submitit.LocalExecutor, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server in another Python resubmits a kernel's element: the bytes it copies were
    # pickled by the kernel's Python, and their header must keep saying so.
    local.update_parameters(array_parallelism=1)
    release = folder.parent / "release"
    jobs = local.map_array(wait_file, [str(release), str(release)])
    jobs[1].cancel()  # before it ever started: its payload is still the array's file
    release.touch()
    assert jobs[0].result(timeout=60) == "released"
    with monkeypatch.context() as other_python:
        other_python.setattr(payload, "PYTHON_VERSION", "3.0.1")
        again = jobs[1].resubmit()
    header = again.paths.submitted_pickle.read_bytes().split(b"\n", 1)[0]
    assert b"3.0.1" not in header and payload.PYTHON_VERSION.encode() in header
    assert again.result(timeout=60) == "released"


def test_an_oversized_element_is_named_and_nothing_is_written(folder: Path) -> None:
    executor = submitit.LocalExecutor(folder, max_pickle_size_gb=1e-4)  # about 100 KB
    with pytest.raises(FailedSubmissionError, match="payload 2 is"):
        executor.map_array(len, [b"a", b"b", os.urandom(200_000)])
    assert not list(folder.glob("*_job.json"))


def test_a_damaged_array_file_names_the_file(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    elements = array_payload.spool_array(
        [submitit.DelayedSubmission(add, i, i) for i in range(3)], tmp_path
    )
    target = tmp_path / "L1_2_submitted.pkl"
    elements[2].place(target)
    for element in elements:
        element.discard()
    assert payload.load(target).args == (2, 2)
    data = target.read_bytes()
    truncated = tmp_path / "L2_1_submitted.pkl"
    truncated.write_bytes(data[: len(data) - 20])
    with pytest.raises(PayloadError, match=r"L2_1_submitted\.pkl is truncated"):
        payload.load(truncated)
    with pytest.raises(PayloadError, match="3 elements of a job array"):
        payload.load(target, element=7)


def test_a_batch_shares_one_payload_file(local: submitit.LocalExecutor) -> None:
    with local.batch():
        jobs = [local.submit(add, i, 1) for i in range(4)]
    assert [job.result(timeout=60) for job in jobs] == [1, 2, 3, 4]
    inodes = {job.paths.submitted_pickle.stat().st_ino for job in jobs}
    assert len(inodes) == 1

