"""The interrupt schedule of a verification: reproducible moments and reasons."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedInterrupt:
    """One interrupt of the schedule: when (a fraction of the reference run) and why.

    Interrupt ``index`` is sent once the run it interrupts has been RUNNING for its share of
    the reference duration: the runs' running times up to it add up to ``fraction`` of it.
    """

    index: int
    fraction: float
    reason: str  # "preemption" or "timeout"


#: Interrupt moments are drawn in this part of the reference run (fractions of its duration).
FRACTION_RANGE = (0.05, 0.9)


def plan_interrupts(count: int, seed: int = 0, max_num_timeout: int = 3) -> list[PlannedInterrupt]:
    """The interrupt schedule: ``count`` moments and reasons, the same for the same seed.

    Moments are fractions of the reference run's duration, one drawn in each of ``count``
    equal slices of :data:`FRACTION_RANGE` (so no two fall on top of each other). Reasons mix
    preemptions and timeouts: at least one of each when ``count >= 2`` and
    ``max_num_timeout >= 1``, and never more timeouts than ``max_num_timeout``.
    """
    generator = random.Random(seed)
    low, high = FRACTION_RANGE
    width = (high - low) / count
    fractions = [low + width * (i + 0.1 + 0.8 * generator.random()) for i in range(count)]
    limit = min(max_num_timeout, count - 1 if count > 1 else 1)
    timeouts = generator.randint(1 if count > 1 else 0, limit) if limit >= 1 else 0
    timed_out = set(generator.sample(range(count), timeouts))
    return [
        PlannedInterrupt(i + 1, fraction, "timeout" if i in timed_out else "preemption")
        for i, fraction in enumerate(fractions)
    ]
