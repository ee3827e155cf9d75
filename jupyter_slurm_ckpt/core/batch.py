"""``DelayedJob``: what ``submit`` returns inside ``with executor.batch()`` until the block ends."""

from __future__ import annotations

from typing import Any, TypeVar

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
