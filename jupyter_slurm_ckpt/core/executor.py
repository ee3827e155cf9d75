"""The base executor owns the submission flow; backends fill a few hooks.

Flow of ``submit`` / ``map_array`` / ``submit_array`` / ``batch``: pickle every payload once,
straight into a file that has no name yet (refusing oversized ones, which are counted, not
written, past the limit), reserve job ids, give each job its files atomically (payload,
description, ``submitted`` event), then launch. If the launch fails, the files written are
removed: nothing is left half-submitted. ``submit_pickled`` enters the same flow with payloads
pickled already (by the notebook's preflight).
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from . import payload
from .errors import (
    FailedSubmissionError,
    InvalidParameterError,
    JobFolderError,
    UnknownParameterError,
)
from .events import append_event
from .files import WriteError, ensure_private_folder
from .helpers import DelayedSubmission
from .info import JobInfo
from .job import DelayedJob, Job
from .paths import JobPaths, template_root

#: How a parameter is checked: a type (see :func:`check_parameter`), or a function
#: ``check(name, value)`` that returns the value to store or raises ``ValueError``.
Check = type | Callable[[str, Any], Any]

#: Parameters every executor understands (submitit's generic names) and their types.
GENERIC_PARAMETERS: dict[str, Check] = {
    "timeout_min": float,
    "mem_gb": float,
    "nodes": int,
    "cpus_per_task": int,
    "gpus_per_node": int,
    "tasks_per_node": int,
    "name": str,
    "stderr_to_stdout": bool,
}

DEFAULT_SIGNAL_DELAY_S = 90.0


def check_parameter(name: str, value: Any, kind: Check) -> Any:
    """Validate one parameter value; returns it converted.

    Raises
    ------
    InvalidParameterError
        A ``ValueError`` naming the parameter and what it must be.
    """
    try:
        return _check_value(name, value, kind)
    except InvalidParameterError:
        raise
    except ValueError as error:
        raise InvalidParameterError(str(error)) from None


def _check_value(name: str, value: Any, kind: Check) -> Any:
    if value is None:
        return None
    if not isinstance(kind, type):
        return kind(name, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, not {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str) or not value or "\n" in value:
            raise ValueError(f"{name} must be a non-empty one-line string, not {value!r}")
        return value
    if kind is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValueError(f"{name} must be a list, not {value!r}")
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    minimum = 0 if name in _MAY_BE_ZERO else 1e-9
    if value < minimum:
        raise ValueError(f"{name} must be {'>= 0' if minimum == 0 else '> 0'}, not {value!r}")
    return kind(value)


_MAY_BE_ZERO = ("gpus_per_node", "num_gpus", "max_num_timeout", "signal_delay_s")


class Executor(ABC):
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

    #: Every backend's executor class, by ``cluster``: each registers itself when it is
    #: defined (the package imports every backend), and as the executor of its job class.
    _classes: ClassVar[dict[str, type[Executor]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.cluster:
            Executor._classes.setdefault(cls.cluster, cls)
            if cls.job_class.__dict__.get("executor_class") is None:
                cls.job_class.executor_class = cls

    @staticmethod
    def of_backend(cluster: str) -> type[Executor]:
        """The executor class of the backend ``cluster`` (``local``, ``slurm``, ``debug``).

        Raises
        ------
        ValueError
            For a name no backend has.
        """
        try:
            return Executor._classes[cluster]
        except KeyError:
            known = ", ".join(sorted(Executor._classes))
            raise ValueError(f"unknown cluster {cluster!r}; choose one of {known}") from None

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
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise UnknownParameterError(
                f"unknown parameter(s) {', '.join(unknown)} for {type(self).__name__}; "
                f"valid parameters: {', '.join(sorted(valid))}"
            )
        for alias, own in self.aliases.items():
            if alias in kwargs and own in kwargs:
                raise InvalidParameterError(
                    f"{own} and {alias} set the same thing: give only one of them"
                )
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

    def _in_batch(self) -> bool:
        return getattr(self, "_batch", None) is not None

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

    @contextlib.contextmanager
    def batch(self, allow_implicit_submissions: bool = False) -> Iterator[None]:
        """Collect the ``submit`` calls of the block and submit them as one array at its end.

        Parameters
        ----------
        allow_implicit_submissions
            Reading a job of the block before its end submits what the block holds so far
            (instead of raising ``AttributeError``).
        """
        if self._batch is not None:
            raise RuntimeError("executor.batch() cannot be nested")
        self._batch = []
        self._allow_implicit_submissions = allow_implicit_submissions
        try:
            yield
            self._submit_pending_batch(at_end=True)
        finally:
            self._batch = None
            self._allow_implicit_submissions = False

    def _submit_pending_batch(self, at_end: bool = False) -> None:
        pending, self._batch = self._batch or [], []
        if not pending:
            if at_end and not self._allow_implicit_submissions:
                warnings.warn(
                    "no submission happened within 'with executor.batch()'",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return
        jobs = self._submit_submissions([delayed for _, delayed in pending], array=True)
        for (placeholder, _), job in zip(pending, jobs):
            placeholder._promote(job)

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
            executor_class = Executor.of_backend(info.cluster)
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
        source = payload.CheckpointPayload(job.paths.submitted_pickle, origin=job.job_id)
        return self._submit_submissions([source.obj], array=False, pickled=[source])[0]

    def _submit_submissions(
        self,
        submissions: list[DelayedSubmission[Any]],
        array: bool,
        pickled: list[payload.Pickled] | None = None,
    ) -> list[Job[Any]]:
        try:
            root = ensure_private_folder(template_root(self.folder))
        except Exception as error:
            raise FailedSubmissionError(str(error)) from None
        limit = int(self.max_pickle_size_gb * 1024**3)
        spooled: list[payload.Pickled] = []
        try:
            if pickled is None:
                pickled = spooled
                for index, delayed in enumerate(submissions):
                    spooled.append(self._pickle(index, delayed, root, limit))
            for index, item in enumerate(pickled):
                if item.size > limit:
                    raise self._too_large(index, item.size)
            job_ids = self._allocate_job_ids(len(pickled), array)
            self._write_and_launch(job_ids, pickled, array)
        finally:
            for item in spooled:
                item.discard()
        return [self._make_job(job_id) for job_id in job_ids]

    def _pickle(
        self, index: int, delayed: DelayedSubmission[Any], root: Path, limit: int
    ) -> payload.Pickled:
        try:
            return payload.spool(delayed, root, max_bytes=limit)
        except payload.PayloadTooLargeError as error:
            raise self._too_large(index, error.size) from None
        except WriteError as error:
            raise FailedSubmissionError(f"cannot write payload {index}: {error}") from None

    def _write_and_launch(
        self, job_ids: list[str], pickled: list[payload.Pickled], array: bool
    ) -> None:
        written: list[Path] = []
        try:
            for job_id, item in zip(job_ids, pickled):
                written.extend(self._write_job_files(job_id, item, len(pickled) if array else 0))
            self._launch(job_ids)
        except Exception as error:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            if isinstance(error, FailedSubmissionError):
                raise
            raise FailedSubmissionError(f"{type(error).__name__}: {error}") from error

    def _too_large(self, index: int, size: int) -> FailedSubmissionError:
        return FailedSubmissionError(
            f"payload {index} is {size / 1024**2:.1f} MB, over the limit of "
            f"{self.max_pickle_size_gb} GB: save large data to a file and pass its path"
        )

    def _num_tasks(self) -> int:
        """Tasks of each job: ``nodes * tasks_per_node`` (backend hook for its own names)."""
        params = self.parameters
        return int(params.get("nodes") or 1) * int(params.get("tasks_per_node") or 1)

    def time_limit_min(self) -> float | None:
        """The jobs' time limit in minutes, None when there is none (whatever the backend
        calls the parameter: Slurm's is ``time``)."""
        limit = self.parameters.get("timeout_min")
        return None if limit is None else float(limit)

    def _job_info(self, job_id: str) -> JobInfo:
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

    def _write_job_files(
        self, job_id: str, pickled: payload.Pickled, array_size: int
    ) -> list[Path]:
        paths = JobPaths.create(self.folder, job_id)
        if paths.folder != template_root(self.folder):
            ensure_private_folder(paths.folder)
        # Not fsynced: a crash before the job starts loses the job anyway, and this is the
        # submission's hot path (an fsync costs more than the rest of a submit).
        pickled.place(paths.submitted_pickle, durable=False)
        info = self._job_info(job_id)
        info.resubmission_of = pickled.origin
        info.write(paths.info)
        fields: dict[str, Any] = {"cluster": self.cluster, "name": info.name, "bytes": pickled.size}
        if array_size:
            fields["array_size"] = array_size
        if pickled.origin is not None:
            fields["resubmission_of"] = pickled.origin
        append_event(paths.events, "submitted", **fields)
        return [paths.submitted_pickle, paths.info, paths.events]

    def _make_job(self, job_id: str) -> Job[Any]:
        return self.job_class(self.folder, job_id)

    # -- backend hooks --------------------------------------------------------------------------

    @abstractmethod
    def _allocate_job_ids(self, count: int, array: bool) -> list[str]:
        """Reserve ``count`` job ids (an array's element ids when ``array``)."""

    @abstractmethod
    def _launch(self, job_ids: list[str]) -> None:
        """Start the jobs whose files are written; raise to abort the whole submission."""


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
