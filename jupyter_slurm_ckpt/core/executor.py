"""The base executor owns the submission flow; backends fill a few declared hooks.

Flow of ``submit`` / ``map_array`` / ``submit_array`` / ``batch`` (and ``submit_pickled``, for
payloads the notebook's preflight pickled): pickle every payload once, straight into a file that
has no name yet (refusing oversized ones); start the jobs (``_start_jobs``: reserve job ids with
``_reserve_job_ids``, give each job its files atomically with ``_write_job_files``, launch with
``_launch``; a backend whose job folders are on another machine does it there); build the jobs
(``_make_job``). If anything fails after the reservation, the files written are removed and the
backend takes back what it reserved (``_withdraw``): nothing is left half-submitted. One hook
hands the next its data as return values (a :class:`Reservation`, what ``_launch`` returns),
never as attributes of the executor: threads may submit through one executor at once.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from . import array_payload, payload, registry
from .batch import Batching, DelayedJob
from .errors import (
    FailedSubmissionError,
    JobFolderError,
)
from .events import append_event
from .files import WriteError, ensure_private_folder
from .helpers import DelayedSubmission
from .info import JobInfo
from .job import Job
from .parameters import (
    DEFAULT_SIGNAL_DELAY_S,
    GENERIC_PARAMETERS,
    Check,
    check_names,
    check_parameter,
    tasks_per_job,
)
from .paths import JobPaths, template_root


@dataclass
class Reservation:
    """The job ids one submission reserved (:meth:`Executor._reserve_job_ids`), handed to the
    submission's later hooks. A backend subclasses it for what those hooks need of the
    reservation (Slurm: its held job and the batch script it was submitted with)."""

    job_ids: list[str]
    array: bool
    #: An array's description, written once: each element's ``<id>_job.json`` is a hard link
    #: to it (see ``JobInfo.array_size``). Set by the flow, not by the backend.
    description: array_payload.ArrayDescription | None = field(
        default=None, init=False, repr=False
    )

    @property
    def array_size(self) -> int:
        """Number of elements of the array, 0 for a single job."""
        return len(self.job_ids) if self.array else 0


class Executor(Batching, ABC):
    """Submit callables as jobs. Subclasses: ``LocalExecutor``, ``SlurmExecutor``, ...

    Parameters
    ----------
    folder
        Job folder; submitit's ``%j`` placeholder is allowed.
    max_num_timeout
        How many timeouts a job may be requeued after (preemptions are unlimited).
    max_pickle_size_gb
        Payloads larger than this are refused before anything is written.
    """

    cluster: ClassVar[str] = ""
    job_class: ClassVar[type[Job[Any]]] = Job
    specific_parameters: ClassVar[dict[str, Check]] = {}
    #: Other names of parameters -> the executor's own (Slurm: ``timeout_min`` -> ``time``).
    aliases: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.cluster:
            registry.register_executor_class(cls)

    def __init__(
        self, folder: str | Path, max_num_timeout: int = 3, max_pickle_size_gb: float = 1.0
    ) -> None:
        self.folder = Path(folder).expanduser().absolute()
        self.max_pickle_size_gb = max_pickle_size_gb
        self.max_num_timeout = int(check_parameter("max_num_timeout", max_num_timeout, int))
        self.parameters: dict[str, Any] = {}
        self._batch: list[tuple[DelayedJob[Any], DelayedSubmission[Any]]] | None = None
        self._allow_implicit_submissions = False

    @classmethod
    def name(cls) -> str:
        """The backend's name: ``local``, ``slurm`` or ``debug`` (submitit's ``name()``)."""
        return cls.cluster

    # -- parameters ---------------------------------------------------------------------------

    @classmethod
    def _valid_parameters(cls) -> dict[str, Check]:
        """Every parameter name this executor takes, with its check."""
        return {**GENERIC_PARAMETERS, **cls.specific_parameters, "max_num_timeout": int}

    def update_parameters(self, **kwargs: Any) -> None:
        """Set job parameters: submitit's generic names, and this executor's own.

        A generic name is stored under the executor's own name for it (``timeout_min`` is
        Slurm's ``time``, see :attr:`aliases`); ``None`` unsets a parameter;
        ``max_num_timeout`` sets the attribute of that name.

        Raises
        ------
        UnknownParameterError
            On an unknown name (the message lists the valid ones); a ``ValueError``.
        InvalidParameterError
            On a bad value, or on two names of one setting (``time`` and ``timeout_min``);
            a ``ValueError``. Nothing is changed then.
        """
        if self._in_batch():
            raise RuntimeError(
                "update_parameters cannot be called within a 'with executor.batch()' block: "
                "set the parameters before it"
            )
        valid = self._valid_parameters()
        check_names(kwargs, valid, self.aliases, type(self).__name__)
        updated = dict(self.parameters)
        max_num_timeout = self.max_num_timeout
        for name, value in kwargs.items():
            checked = check_parameter(name, value, valid[name])
            if name == "max_num_timeout":
                max_num_timeout = max_num_timeout if checked is None else int(checked)
                continue
            own, checked = self._own_parameter(name, checked)
            if checked is None:
                updated.pop(own, None)
            else:
                updated[own] = checked
        self._check_parameters(updated)
        self.parameters = updated
        self.max_num_timeout = max_num_timeout

    def _own_parameter(self, name: str, value: Any) -> tuple[str, Any]:
        """The executor's own name and value of a checked parameter (an alias renamed)."""
        return self.aliases.get(name, name), value

    def _check_parameters(self, parameters: dict[str, Any]) -> None:
        """Check the parameters as a whole (backend hook); raise ``InvalidParameterError``."""
        return None

    # -- submission ---------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job[Any]:
        """Submit ``fn(*args, **kwargs)`` as one job (inside ``batch()``: as an array element)."""
        delayed = DelayedSubmission(fn, *args, **kwargs)
        if self._batch is not None:
            placeholder: DelayedJob[Any] = DelayedJob(self)
            self._batch.append((placeholder, delayed))
            return placeholder
        return self._submit_submissions([delayed], array=False)[0]

    def submit_array(
        self, fns: Sequence[Callable[[], Any] | DelayedSubmission[Any]]
    ) -> list[Job[Any]]:
        """Submit zero-argument callables as one job array (submitit's ``submit_array``).

        Each job calls its callable without arguments (``functools.partial``, a configured
        ``Checkpointable``...); a ``DelayedSubmission`` is such a callable too: its function
        is called with its arguments (and keeps its ``checkpoint``).
        """
        submissions = [_as_submission(fn) for fn in fns]
        if not submissions:
            warnings.warn("submit_array received no callables: no job submitted", stacklevel=2)
            return []
        return self._submit_submissions(submissions, array=True)

    def map_array(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Job[Any]]:
        """Submit ``fn(*items)`` for each tuple of items, as one job array."""
        submissions = [DelayedSubmission(fn, *items) for items in zip(*iterables)]
        if not submissions:
            warnings.warn("map_array received empty iterables: no job submitted", stacklevel=2)
            return []
        return self._submit_submissions(submissions, array=True)

    def submit_pickled(self, pickled: list[payload.Pickled], array: bool) -> list[Job[Any]]:
        """Submit payloads pickled already with ``payload.spool`` (the notebook's preflight
        pickles each payload once, straight into its file, and hands them over here).

        The caller keeps ownership: it discards the ones that were not placed.
        """
        return self._submit_submissions([item.obj for item in pickled], array, pickled)

    @classmethod
    def for_job(cls, info: JobInfo) -> Executor:
        """An executor like the one that submitted the job ``info`` describes: its backend,
        folder and parameters (``job.resubmit()`` submits with it)."""
        try:
            executor_class = registry.executor_class(info.cluster)
        except ValueError:
            raise JobFolderError(f"no executor for the backend {info.cluster!r}") from None
        executor = executor_class._from_info(info)
        executor.update_parameters(**info.parameters)
        return executor

    @classmethod
    def _from_info(cls, info: JobInfo) -> Executor:
        """Backend hook: a new executor for the job ``info`` describes (its constructor's
        arguments; :meth:`for_job` sets the parameters)."""
        return cls(info.folder, max_num_timeout=info.max_num_timeout)

    def resubmit_from(self, job: Job[Any]) -> Job[Any]:
        """Submit ``job``'s payload file as it is (its last checkpoint) as a new job."""
        source = array_payload.resubmittable(
            job.paths.submitted_pickle, job.paths.array_index, origin=job.job_id
        )
        return self._submit_submissions([source.obj], array=False, pickled=[source])[0]

    def _submit_submissions(
        self,
        submissions: list[DelayedSubmission[Any]],
        array: bool,
        pickled: list[payload.Pickled] | None = None,
    ) -> list[Job[Any]]:
        """The flow of every submission (see the module docstring); ``pickled``: the payloads
        pickled already (then ``submissions`` are their objects)."""
        try:
            root = ensure_private_folder(template_root(self.folder))
        except Exception as error:
            raise FailedSubmissionError(str(error)) from None
        limit = int(self.max_pickle_size_gb * 1024**3)
        spooled: list[payload.Pickled] = []
        try:
            if pickled is None:
                pickled = spooled
                spooled.extend(self._pickle(submissions, array, root, limit))
            for index, item in enumerate(pickled):
                if item.size > limit:
                    raise self._too_large(index, item.size)
            reservation, launched = self._start_jobs(pickled, array)
        finally:
            for item in spooled:
                item.discard()
        jobs = [
            self._make_job(job_id, item, launched)
            for job_id, item in zip(reservation.job_ids, pickled)
        ]
        if reservation.description is not None:  # known here: no job reads it back
            for job in jobs:
                job._info = reservation.description.of(job.job_id)
        return jobs

    def _start_jobs(
        self, pickled: list[payload.Pickled], array: bool
    ) -> tuple[Reservation, Any]:
        """Reserve the jobs' ids, give each job its files, launch them: returns the
        reservation and what :meth:`_launch` returned. A backend whose job folders are on
        another machine does all of it there, in one exchange (``ssh``); the others fill the
        hooks below."""
        reservation = self._reserve_job_ids(len(pickled), array)
        try:
            launched = self._write_and_launch(reservation, pickled)
        except BaseException:
            with contextlib.suppress(Exception):
                self._withdraw(reservation)
            raise
        return reservation, launched

    def _pickle(
        self, submissions: list[DelayedSubmission[Any]], array: bool, root: Path, limit: int
    ) -> list[payload.Pickled]:
        """Each submission pickled once; an array's into one file (``array_payload``)."""
        try:
            if array:
                return list(array_payload.spool_array(submissions, root, max_bytes=limit))
            return [payload.spool(submissions[0], root, max_bytes=limit)]
        except array_payload.ElementTooLargeError as error:
            raise self._too_large(error.index, error.size) from None
        except payload.PayloadTooLargeError as error:
            raise self._too_large(0, error.size) from None
        except WriteError as error:
            raise FailedSubmissionError(f"cannot write the payloads: {error}") from None

    def _write_and_launch(self, reservation: Reservation, pickled: list[payload.Pickled]) -> Any:
        """Write every job's files, then launch; on failure remove the files written."""
        written: list[Path] = []
        try:
            if reservation.array:
                reservation.description = self._array_description(reservation)
            try:
                for job_id, item in zip(reservation.job_ids, pickled):
                    written.extend(self._write_job_files(reservation, job_id, item))
            finally:
                if reservation.description is not None:
                    reservation.description.file.discard()
            return self._launch(reservation)
        except Exception as error:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            if isinstance(error, FailedSubmissionError):
                raise
            raise FailedSubmissionError(f"{type(error).__name__}: {error}") from error

    def _too_large(self, index: int, size: int) -> FailedSubmissionError:
        return FailedSubmissionError(
            f"payload {index} is {payload.format_size(size)}, over the limit of "
            f"{self.max_pickle_size_gb} GB: save large data to a file and pass its path"
        )

    @property
    def folder_on_nodes(self) -> str:
        """The job folder as the jobs see it, where they run: :attr:`folder`, except for a
        backend whose jobs run on a cluster this process reaches over SSH (:attr:`folder` is
        then this machine's copy)."""
        return str(self.folder)

    def time_limit_min(self) -> float | None:
        """The jobs' time limit in minutes, None when there is none (whatever the backend
        calls the parameter: Slurm's is ``time``)."""
        limit = self.parameters.get("timeout_min")
        return None if limit is None else float(limit)

    # -- backend hooks: the flow above calls these -----------------------------------------

    @abstractmethod
    def _reserve_job_ids(self, count: int, array: bool) -> Reservation:
        """Reserve ``count`` job ids for one submission (an array's element ids when
        ``array``): once the payloads are pickled and checked, before any file is written.

        Returns what the later hooks of this submission need (a :class:`Reservation`, or a
        backend's subclass). Raise ``FailedSubmissionError`` to refuse the submission.
        """

    def _write_job_files(
        self, reservation: Reservation, job_id: str, pickled: payload.Pickled
    ) -> list[Path]:
        """Give one job its files, each atomically: the payload (``pickled`` placed), the
        description, the ``submitted`` event. Returns the files written (removed again if the
        submission fails). A backend adds its own (Slurm: the batch script)."""
        paths = JobPaths.create(self.folder, job_id)
        if paths.folder != template_root(self.folder):
            ensure_private_folder(paths.folder)
        # Not fsynced: a crash before the job starts loses the job anyway, and this is the
        # submission's hot path (an fsync costs more than the rest of a submit).
        pickled.place(paths.submitted_pickle, durable=False)
        if reservation.description is not None:
            # An array element: its description is its array's (a hard link, no new file),
            # which records the submission too (``Job.events`` shows it as its first event).
            reservation.description.file.link(paths.info)
            return [paths.submitted_pickle, paths.info]
        info = self._job_info(job_id)
        info.resubmission_of = pickled.origin
        info.write(paths.info)
        fields: dict[str, Any] = {"cluster": self.cluster, "name": info.name, "bytes": pickled.size}
        if pickled.origin is not None:
            fields["resubmission_of"] = pickled.origin
        append_event(paths.events, "submitted", **fields)
        return [paths.submitted_pickle, paths.info, paths.events]

    def _array_description(self, reservation: Reservation) -> array_payload.ArrayDescription:
        """The description every element of the array links to (see ``JobInfo.read``)."""
        info = self._job_info(reservation.job_ids[0].partition("_")[0])
        info.array_size = reservation.array_size
        return array_payload.ArrayDescription.write(info, template_root(self.folder))

    def _job_info(self, job_id: str) -> JobInfo:
        """The description of a job this executor submits now (``<id>_job.json``); a backend
        corrects what it knows better (Slurm: the limit and warning Slurm really applies)."""
        params = self.parameters
        return JobInfo(
            job_id=job_id,
            cluster=self.cluster,
            folder=str(self.folder),
            name=params.get("name") or "job",
            num_tasks=self._num_tasks(),
            max_num_timeout=self.max_num_timeout,
            timeout_min=self.time_limit_min(),
            signal_delay_s=float(params.get("signal_delay_s") or DEFAULT_SIGNAL_DELAY_S),
            parameters=dict(params),
        )

    def _num_tasks(self) -> int:
        """Tasks of each job: ``nodes * tasks_per_node``, under the backend's own names."""
        return tasks_per_job(self.parameters, self.aliases.get("tasks_per_node", "tasks_per_node"))

    @abstractmethod
    def _launch(self, reservation: Reservation) -> Any:
        """Start the jobs of ``reservation``, whose files are written; raise to abort the
        whole submission. What it returns reaches :meth:`_make_job` (the local backend: the
        process it started)."""

    def _withdraw(self, reservation: Reservation) -> None:
        """Take back what :meth:`_reserve_job_ids` reserved, when the submission fails after
        it (Slurm cancels its held job). By default there is nothing to take back: an id is
        never handed out twice anyway."""
        return None

    def _make_job(self, job_id: str, pickled: payload.Pickled, launched: Any) -> Job[Any]:
        """The job object for ``job_id`` once submitted: ``pickled`` is its payload (its
        ``obj``, what was pickled, when pickled in this process), ``launched`` what
        :meth:`_launch` returned."""
        return self.job_class(self.folder, job_id)


class PythonExecutor(Executor):
    """An executor whose jobs run in a Python process of their own (not in this one).

    Parameters
    ----------
    folder, max_num_timeout, max_pickle_size_gb
        As :class:`Executor`'s.
    python
        The interpreter that runs the jobs (default: this one; on a cluster it must exist on
        the nodes).
    """

    def __init__(
        self,
        folder: str | Path,
        max_num_timeout: int = 3,
        max_pickle_size_gb: float = 1.0,
        python: str | None = None,
    ) -> None:
        super().__init__(folder, max_num_timeout, max_pickle_size_gb)
        self.python = python or sys.executable

    @classmethod
    def _from_info(cls, info: JobInfo) -> Executor:
        """The job's interpreter too (see :meth:`Executor.for_job`)."""
        return cls(info.folder, max_num_timeout=info.max_num_timeout, python=info.python)


def _as_submission(fn: Any) -> DelayedSubmission[Any]:
    """A zero-argument callable of ``submit_array`` as the submission the job runs."""
    if isinstance(fn, DelayedSubmission):
        return fn
    if not callable(fn):
        raise TypeError(
            f"submit_array takes zero-argument callables (e.g. functools.partial), "
            f"not {type(fn).__name__}"
        )
    return DelayedSubmission(fn)
