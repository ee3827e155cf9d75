"""The local backend's controller: one process per job that plays Slurm for it.

It waits PENDING in the user's local queue for a slot (``slots``), then runs each run of the
job as forked worker processes, sends the checkpoint signal before the time limit (and on
``_interrupt``, relayed with SIGUSR1), kills the run at the limit, and starts the next run in
place when the worker asks to be requeued. Started as ``python -m
jupyter_slurm_ckpt.backends.local.controller FOLDER PARALLELISM ID [ID...]`` (or forked by the
agent, which runs :func:`main`); with several ids (an array) the array's launcher
(``launcher``) forks one controller per job, at most PARALLELISM at a time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import NoReturn

from ...core import worker
from ...core.environment import set_emulated_node, set_worker_environment
from ...core.events import append_event, read_events, summarize
from ...core.files import atomic_write_text, open_private_append, remove_stale_temp_files
from ...core.info import JobInfo
from ...core.paths import JobPaths, resolve_folder
from ...core.runs import results_of_last_run
from .. import processes
from .launcher import launch_array
from .records import cancelled, claim_job, write_process_record
from .slots import SlotQueue, job_memory, job_slots

#: Exit code of a worker that asks to be requeued (it has checkpointed already).
REQUEUE_EXIT_CODE = 121
#: SIGTERM to SIGKILL, when a run is killed at its time limit (Slurm's KillWait, shortened).
KILL_WAIT_S = 1.0


class LocalRuntime:
    """The worker's view of the local backend."""

    def __init__(self, paths: JobPaths) -> None:
        self.paths = paths

    def signal_reason(self) -> str:
        """Read the reason the controller wrote before signalling (preemption by default)."""
        try:
            request = json.loads(self.paths.signal_request.read_text())
        except (OSError, ValueError):
            return "preemption"
        return "timeout" if request.get("reason") == "timeout" else "preemption"

    def termination(self) -> worker.Termination | None:
        """None: the controller sends SIGTERM only to cancel or at the hard kill (the warning
        came before), and the run ends then."""
        return None

    def requeue(self, deadline: float) -> None:
        """Nothing to ask: the controller requeues a run that exits with the requeue status."""

    def end_run(self) -> NoReturn:
        """End this run; the controller sees the exit code and starts the next one."""
        os._exit(REQUEUE_EXIT_CODE)


def _worker_environment(info: JobInfo, paths: JobPaths, restart: int) -> None:
    set_worker_environment(info, paths, restart)
    nodes = int(info.parameters.get("nodes") or 1)
    node = set_emulated_node(paths.task_id, info.num_tasks, nodes)
    gpus = info.parameters.get("gpus_per_node")
    if gpus is not None:  # GPUs stay visible unless the user asked for a number of them
        visible = info.parameters.get("visible_gpus")
        if visible is None:
            current = os.environ.get("CUDA_VISIBLE_DEVICES")
            visible = current.split(",") if current else [str(i) for i in range(nodes * gpus)]
        # Each emulated node has GPUs of its own, as each node of a cluster has.
        mine = list(visible)[node * gpus : (node + 1) * gpus]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in mine)


def _redirect_output(info: JobInfo, paths: JobPaths) -> None:
    out = open_private_append(paths.stdout)
    err = out if info.parameters.get("stderr_to_stdout") else open_private_append(paths.stderr)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), line_buffering=True)


def _fork_task(
    info: JobInfo, paths: JobPaths, task: int, restart: int, wake_fds: tuple[int, int]
) -> int:
    controller = os.getpid()
    pid = os.fork()
    if pid:
        return pid

    def work() -> int:
        # A worker without its controller has no time limit and nobody to requeue it.
        processes.die_with_parent(controller)
        signal.set_wakeup_fd(-1)
        for fd in wake_fds:
            os.close(fd)
        for signum in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        task_paths = paths.for_task(task)
        _worker_environment(info, task_paths, restart)
        _redirect_output(info, task_paths)
        return worker.run_task(task_paths, info, LocalRuntime(task_paths))

    processes.run_child(work)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return f"was killed by signal {signum} ({signal.Signals(signum).name})"
    return f"exited with status {os.WEXITSTATUS(status)}"


@dataclass
class _Run:
    """One run of a job: its worker processes and its deadlines (monotonic seconds)."""

    workers: dict[int, int]  # pid -> task
    signal_at: float
    kill_at: float
    statuses: dict[int, int] = field(default_factory=dict)  # task -> wait status
    signalled: str | None = None
    killed: bool = False

    def live_pids(self) -> list[int]:
        return [pid for pid, task in self.workers.items() if task not in self.statuses]


class Controller:
    """Plays the scheduler for one local job (see the module docstring)."""

    def __init__(self, paths: JobPaths, lock: int | None = None, slot: int | None = None) -> None:
        self.paths = paths
        self.lock = lock  # the job's lock when a launcher took it already (see claim_job)
        self.slot = slot  # its slot of the local queue, likewise (see slots)
        self.info = JobInfo.read(paths.info)
        self.delay = self.info.effective_signal_delay_s()
        self.limit = None if self.info.timeout_min is None else self.info.timeout_min * 60.0
        self.interrupt_requested = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def _on_interrupt(self, signum: int, frame: object) -> None:
        self.interrupt_requested = True

    def run(self) -> int:
        """Run the job to its end, requeue after requeue; returns the exit code."""
        if self.lock is None:
            self.lock = claim_job(self.paths)
            if self.lock is None:
                return 0
        write_process_record(self.paths, "controller")
        if cancelled(self.paths):
            return 0  # cancelled before it started
        if self.slot is None:
            self.slot = self._wait_for_slot()
            if cancelled(self.paths):
                return 0
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda s, f: None)  # wakes select() through the fd
        signal.signal(signal.SIGUSR1, self._on_interrupt)
        signal.signal(worker.CHECKPOINT_SIGNAL, worker.remember_early_signal)
        restart = 0
        while True:
            run = self._start_run(restart)
            self._supervise(run)
            if run.statuses.get(0) == REQUEUE_EXIT_CODE << 8:
                restart += 1
                continue
            self._record_end(run)
            return 0

    def _wait_for_slot(self) -> int | None:
        """Wait PENDING in the local queue for a slot (see ``slots``); keep it to the end."""
        try:
            queue = SlotQueue()
        except Exception as error:  # no private folder for the queue: run without one
            print(f"jupyter_slurm_ckpt: no local queue ({error}): job started at once",
                  file=sys.stderr)
            return None
        said: list[str] = []

        def say(reason: str) -> None:
            said.append(reason)
            write_process_record(self.paths, "controller", waiting=reason)

        limit = job_slots(self.info.parameters, self.info.num_tasks)
        with queue.turn(limit, say):
            slot = queue.take(limit, job_memory(self.info.parameters), say)
        if said:  # no longer waiting
            write_process_record(self.paths, "controller")
        return slot

    def _start_run(self, restart: int) -> _Run:
        # An interrupt that came after the last run ended was meant for that run, not this one.
        self.interrupt_requested = False
        with contextlib.suppress(FileNotFoundError):
            self.paths.signal_request.unlink()
        remove_stale_temp_files(self.paths.folder, self.info.job_id)
        now = time.monotonic()
        forever = float("inf")
        limit = forever if self.limit is None else self.limit
        workers = {
            _fork_task(self.info, self.paths, task, restart, (self.wake_r, self.wake_w)): task
            for task in range(self.info.num_tasks)
        }
        return _Run(workers, signal_at=now + limit - self.delay, kill_at=now + limit)

    def _send_signal(self, run: _Run, reason: str) -> None:
        atomic_write_text(self.paths.signal_request, json.dumps({"reason": reason}))
        run.signalled = reason
        processes.signal_all(run.live_pids(), worker.CHECKPOINT_SIGNAL)

    def _supervise(self, run: _Run) -> None:
        while run.live_pids():
            now = time.monotonic()
            wait = max(0.0, min(run.signal_at, run.kill_at) - now)
            with contextlib.suppress(InterruptedError):
                select.select([self.wake_r], [], [], min(wait, 3600.0))
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 4096)
            self._reap(run)
            now = time.monotonic()
            if self.interrupt_requested:
                self.interrupt_requested = False
                try:
                    reason = json.loads(self.paths.signal_request.read_text())["reason"]
                except (OSError, ValueError, KeyError):
                    reason = "preemption"
                self._send_signal(run, reason)
                run.kill_at = min(run.kill_at, now + self.delay)
                run.signal_at = float("inf")
            if now >= run.signal_at and run.signalled is None:
                self._send_signal(run, "timeout")
                run.signal_at = float("inf")
            if now >= run.kill_at and not run.killed:
                run.killed = True
                run.signalled = run.signalled or "timeout"
                self._kill(run)
            if run.statuses.get(0) == REQUEUE_EXIT_CODE << 8 and run.live_pids():
                self._kill(run)  # the other tasks follow task 0 back into the queue

    def _reap(self, run: _Run) -> None:
        for pid in run.live_pids():
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    run.statuses[run.workers[pid]] = status

    def _kill(self, run: _Run) -> None:
        pids = run.live_pids()
        tree = [p for pid in pids for p in processes.descendants(pid)]
        processes.terminate(pids + tree, KILL_WAIT_S)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(pid, 0)
                run.statuses[run.workers[pid]] = status

    def _record_end(self, run: _Run) -> None:
        events = read_events(self.paths.events)
        summary = summarize(events)
        if summary.terminal is not None and summary.terminal["event"] != "completed":
            return  # cancelled, or a task recorded why it failed
        if run.killed:
            state = "TIMEOUT" if run.signalled == "timeout" else "PREEMPTED"
            reason = summary.not_requeued_reason or f"killed at the time limit ({run.signalled})"
            append_event(self.paths.events, "failed", state=state, reason=reason)
            return
        written = results_of_last_run(self.paths, events, len(run.workers), run.statuses)
        for task, status in sorted(run.statuses.items()):
            if status != 0 and task not in written:
                append_event(
                    self.paths.events,
                    "failed",
                    state="FAILED",
                    reason=f"task {task} {_describe_status(status)} without writing a result",
                )
                return


def main(argv: list[str]) -> int:
    """Entry point: ``FOLDER PARALLELISM ID [ID...]``."""
    folder, parallelism, *job_ids = argv
    if len(job_ids) == 1:
        return Controller(JobPaths(resolve_folder(folder, job_ids[0]), job_ids[0])).run()
    launch_array(folder, int(parallelism), job_ids, _run_element)
    return 0


def _run_element(paths: JobPaths, lock: int, slot: int | None) -> int:
    """An array element, in the child its launcher forked for it."""
    return Controller(paths, lock, slot).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
