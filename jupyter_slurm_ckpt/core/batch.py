"""``with executor.batch()``: the executor's part (:class:`Batching`), and ``DelayedJob``, what
``submit`` returns inside the block until it ends."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, TypeVar

from .helpers import DelayedSubmission
from .job import Job

R = TypeVar("R")


class DelayedJob(Job[R]):
    """What ``submit`` returns inside ``with executor.batch()``: it becomes the real job
    (same object, its class and fields replaced) when the batch is submitted.

    Until then reading it raises ``AttributeError``, unless the batch was opened with
    ``allow_implicit_submissions=True``: then the first read submits what the batch holds
    so far (submitit's semantics).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> DelayedJob[Any]:
        return object.__new__(cls)

    def __init__(self, executor: Any) -> None:  # no Job fields until promoted
        self.__dict__["_batch_executor"] = executor

    def __getattr__(self, name: str) -> Any:  # only for fields a real job would have
        executor = self.__dict__.get("_batch_executor")
        if executor is None or not executor._allow_implicit_submissions:
            raise AttributeError(
                f"job.{name}: the jobs of `with executor.batch()` are submitted when the block "
                "ends; read them after it, or use executor.batch(allow_implicit_submissions=True)"
            )
        executor._submit_pending_batch()
        return getattr(self, name)

    def _promote(self, job: Job[Any]) -> None:
        self.__dict__.clear()
        self.__dict__.update(job.__dict__)
        self.__class__ = type(job)  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}<not submitted yet: inside executor.batch()>"


class Batching:
    """The executor's side of ``with executor.batch()``: ``submit`` calls inside the block are
    collected (``_batch``) and submitted as one array when it ends."""

    _batch: list[tuple[DelayedJob[Any], DelayedSubmission[Any]]] | None = None
    _allow_implicit_submissions = False

    def _submit_submissions(
        self, submissions: list[DelayedSubmission[Any]], array: bool
    ) -> list[Job[Any]]:
        raise NotImplementedError  # the executor's flow

    def _in_batch(self) -> bool:
        return self._batch is not None

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
