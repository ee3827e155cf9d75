"""``SshJob``: a job of a cluster reached over SSH, seen from this machine.

Its folder here is the mirror (``mirror``): the views read it as they read any job folder. Its
state is the cluster's (the remote side's ``job.state``, refreshed for every job of the cluster
in one round trip, ``states``); its actions (the widget's buttons, ``cancel``, ``resubmit``)
run there, and their answers bring the copy up to date. While the cluster cannot be reached,
the last answers stand and :attr:`SshJob.scheduler_problem` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...core import payload
from ...core.errors import JobFolderError
from ...core.job import FINAL_STATES, Job
from ...core.paths import JobKey
from ...core.resubmission import Resubmission
from .session import remote_for
from .states import JobAnswer, RemoteStates, Tracked, states_of
from .target import SshTarget


class SshJob(Job[Any]):
    """A job on a cluster reached over SSH. ``SshJob(mirror_folder, job_id)`` re-attaches to
    it (``Job(folder, id)`` does too: the copy's description names this backend)."""

    cluster: ClassVar[str] = "ssh"

    # -- where it is --------------------------------------------------------------------------

    def _remote_states(self) -> RemoteStates:
        where = self.info.remote
        if not where:
            raise JobFolderError(f"{self.paths.info} does not say where the job runs (remote)")
        return states_of(remote_for(SshTarget.parse(where["target"]), where["python"]))

    def _tracked(self) -> Tracked:
        where = self.info.remote or {}
        folder = where.get("folder", "")
        return Tracked(self.key, folder, self.paths, self.num_tasks, self.read_only)

    def _answer(self, refresh: bool = True) -> JobAnswer | None:
        states = self._remote_states()
        if refresh:
            states.ask_safely([self._tracked()])
        return states.answer(self.key)

    # -- states -------------------------------------------------------------------------------

    def _folder_state(self, *, processes_gone: bool = False) -> str | None:
        """The cluster's final state, once it said the job ended (it read the real folder,
        end events included)."""
        answer = self._answer(refresh=False)
        if answer is not None and answer.done and answer.state in FINAL_STATES:
            return answer.state
        return None

    def _live_state(self) -> str:
        answer = self._answer()
        if answer is None:  # never answered (the cluster is away): what the copy says
            return super()._folder_state() or "UNKNOWN"
        return answer.state

    @classmethod
    def poll_states(cls, jobs: Sequence[Job[Any]]) -> Mapping[JobKey, str]:
        """States of ``jobs``: one round trip per cluster (with every other tracked job of
        it), none when their answers are fresh; the last answers while it cannot be reached."""
        groups: dict[int, tuple[RemoteStates, list[SshJob]]] = {}
        for job in jobs:
            assert isinstance(job, SshJob)
            remote_states = job._remote_states()
            groups.setdefault(id(remote_states), (remote_states, []))[1].append(job)
        states: dict[JobKey, str] = {}
        for remote_states, group in groups.values():
            remote_states.ask_safely([job._tracked() for job in group])
            for job in group:
                answer = remote_states.answer(job.key)
                states[job.key] = answer.state if answer is not None else job._live_state()
        return states

    @property
    def pending_reason(self) -> str | None:
        """Slurm's reason why the job waits (Priority, Resources...), as the cluster said."""
        answer = self._answer(refresh=False)
        if answer is None or self.state != "PENDING":
            return None
        return answer.pending_reason

    @property
    def scheduler_problem(self) -> str | None:
        """Why the cluster (or its Slurm) cannot be asked right now, if so."""
        problem = self._remote_states().problem
        if problem is not None:
            return problem
        answer = self._answer(refresh=False)
        return None if answer is None else answer.scheduler_problem

    # -- what is on the cluster only ---------------------------------------------------------

    def result_bytes(self, task: int = 0) -> int | None:
        """The size of the task's result file there (or of its copy here)."""
        here = super().result_bytes(task)
        if here is not None:
            return here
        answer = self._answer(refresh=False)
        return None if answer is None else answer.results.get(task)

    def results_in_folder(self) -> list[Any]:
        """As :meth:`Job.results_in_folder`, once the results the cluster holds are copied."""
        answer = self._answer(refresh=False)
        if answer is not None:
            for task in self._task_ids():
                path = self.paths.for_task(task).result_pickle
                if task in answer.results and not path.exists():
                    self._remote_states().fetch(self._tracked(), "result", path, task)
        return super().results_in_folder()

    def _logs(self, stream: str, task: int | None) -> str | None:
        """The whole logs, from the cluster (the copy here holds only their ends)."""
        remote_states, job = self._remote_states(), self._tracked()
        texts = []
        for t in self._task_ids() if task is None else [task]:
            kind = "out" if stream == "stdout" else "err"
            request = {"op": "log", "task": t, "stream": kind, **job.names()}
            answer = remote_states.remote.request(request)
            if answer.get("exists"):
                texts.append(bytes(answer.get("data", b"")).decode(errors="replace"))
        return "\n".join(texts) if texts else None

    def submission(self) -> Any:
        """The payload the next run would execute, fetched from the cluster."""
        self._remote_states().fetch(self._tracked(), "submitted", self.paths.submitted_pickle)
        return payload.load(self.paths.submitted_pickle)

    # -- actions (on the cluster; their answers update the copy) --------------------------------

    def _cancel(self) -> None:
        self._remote_states().act(self._tracked(), "cancel")

    def _record_cancelled(self) -> None:
        """Nothing here: the cluster's job recorded its cancel, and the answer brought it."""

    def _interrupt(self, timeout: bool = False) -> None:
        """Simulate a preemption (a time limit with ``timeout=True``) there: the job gets the
        real signal, checkpoints and requeues (see :meth:`Job._interrupt`)."""
        self._remote_states().act(self._tracked(), "interrupt", timeout=timeout)

    def resubmit_once(self) -> Resubmission:
        """Resubmit there, once (see :meth:`Job.resubmit_once`)."""
        answer, made = self._remote_states().act(self._tracked(), "resubmit")
        again = SshJob(made[0].paths.folder, made[0].key.job_id)
        again.read_only = self.read_only
        return Resubmission(again, created=bool(answer.get("created")))
