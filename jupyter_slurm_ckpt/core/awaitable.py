"""``job.awaitable()``: a job's blocking calls for ``await`` (submitit's ``AsyncJobProxy``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .job import Job

R = TypeVar("R")


class AsyncJobProxy(Generic[R]):
    """Awaitable versions of a job's blocking calls."""

    def __init__(self, job: Job[R]) -> None:
        self.job = job

    async def wait(self, poll_frequency: float = 0.02) -> None:
        """Wait without blocking the event loop."""
        while not self.job.done():
            await asyncio.sleep(poll_frequency)

    async def result(self, poll_frequency: float = 0.02) -> R:
        """``job.result()`` for ``await``."""
        await self.wait(poll_frequency)
        return self.job.result()

    async def results(self, poll_frequency: float = 0.02) -> list[R]:
        """``job.results()`` for ``await``."""
        await self.wait(poll_frequency)
        return self.job.results()
