"""Comparing a run's result with the reference's: where they differ first, in words."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable
from typing import Any

from .report import RunOutcome, failure_line

#: Relative and absolute tolerances of the default comparison (floats and numpy arrays).
RTOL = 1e-7

ATOL = 1e-12


def _short(value: Any) -> str:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():  # numpy scalar: show the number
        with contextlib.suppress(Exception):
            value = item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    if isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_)):
        return False
    if isinstance(value, (int, float)):
        return True
    return numpy is not None and isinstance(value, (numpy.integer, numpy.floating))


def _numbers_differ(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return bool(a != b)
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return not (math.isnan(a) and math.isnan(b))
    return not math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def _arrays_differ(path: str, a: Any, b: Any, rtol: float, atol: float) -> str | None:
    numpy = sys.modules["numpy"]
    if not isinstance(a, numpy.ndarray) or not isinstance(b, numpy.ndarray):
        return f"{path}: {type(a).__name__} (reference) vs {type(b).__name__}"
    if a.shape != b.shape:
        return f"{path}: shape {a.shape} (reference) vs {b.shape}"
    numeric = a.dtype.kind in "fciu" and b.dtype.kind in "fciu"
    if numeric:
        close = numpy.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        return _elements_differ(path, a, b, close, numpy)
    return None if numpy.array_equal(a, b) else f"{path}: arrays differ"


def _elements_differ(path: str, a: Any, b: Any, close: Any, module: Any) -> str | None:
    """None when every element is ``close`` (an array or tensor of booleans); else how many
    differ, and the first (``module``: numpy or torch)."""
    if bool(close.all()):
        return None
    where = tuple(int(i) for i in module.argwhere(~close)[0])
    return (
        f"{path}: {int((~close).sum())} of {math.prod(close.shape)} elements differ, first at "
        f"{where}: {_short(a[where])} (reference) vs {_short(b[where])}"
    )


def _tensors_differ(path: str, a: Any, b: Any, rtol: float, atol: float) -> str | None:
    torch = sys.modules["torch"]
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return f"{path}: {type(a).__name__} (reference) vs {type(b).__name__}"
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"{path}: {a.dtype} {tuple(a.shape)} (reference) vs {b.dtype} {tuple(b.shape)}"
    a, b = a.detach().cpu(), b.detach().cpu()  # results may come from another device
    inexact = a.is_floating_point() or a.is_complex()
    close = torch.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True) if inexact else a == b
    return _elements_differ(path, a, b, close, torch)


def first_difference(
    reference: Any, value: Any, *, rtol: float = RTOL, atol: float = ATOL, path: str = "result"
) -> str | None:
    """Where ``value`` differs from ``reference`` first, in words; None when they are equal.

    Floats, numpy arrays and torch tensors are compared with a tolerance (``math.isclose`` /
    ``numpy.isclose`` / ``torch.isclose``; NaN equals NaN), dicts, lists and tuples element by
    element, anything else with ``==``.
    """
    torch = sys.modules.get("torch")  # no tensor can exist unless torch was imported
    if torch is not None and (
        isinstance(reference, torch.Tensor) or isinstance(value, torch.Tensor)
    ):
        return _tensors_differ(path, reference, value, rtol, atol)
    numpy = sys.modules.get("numpy")  # no array can exist unless numpy was imported
    if numpy is not None and (
        isinstance(reference, numpy.ndarray) or isinstance(value, numpy.ndarray)
    ):
        return _arrays_differ(path, reference, value, rtol, atol)
    if _is_number(reference) and _is_number(value):
        if _numbers_differ(reference, value, rtol, atol):
            return f"{path}: {_short(reference)} (reference) vs {_short(value)}"
        return None
    if isinstance(reference, dict) and isinstance(value, dict):
        missing = [key for key in reference if key not in value]
        extra = [key for key in value if key not in reference]
        if missing or extra:
            return f"{path}: keys differ (missing {missing}, unexpected {extra})"
        for key in reference:
            found = first_difference(
                reference[key], value[key], rtol=rtol, atol=atol, path=f"{path}[{key!r}]"
            )
            if found:
                return found
        return None
    if isinstance(reference, (list, tuple)) and isinstance(value, (list, tuple)):
        if type(reference) is not type(value):
            return f"{path}: {type(reference).__name__} (reference) vs {type(value).__name__}"
        if len(reference) != len(value):
            return f"{path}: length {len(reference)} (reference) vs {len(value)}"
        for index, (a, b) in enumerate(zip(reference, value)):
            found = first_difference(a, b, rtol=rtol, atol=atol, path=f"{path}[{index}]")
            if found:
                return found
        return None
    try:
        equal = reference == value
        same = equal if isinstance(equal, bool) else bool(numpy.all(equal) if numpy else equal)
    except Exception:  # an == that raises or cannot be reduced to one answer
        same = reference is value
    return None if same else f"{path}: {_short(reference)} (reference) vs {_short(value)}"


def user_compare(compare: Callable[[Any, Any], Any]) -> Callable[[Any, Any], str | None]:
    """The user's ``compare(reference, result) -> bool`` as a judge of differences."""

    def differs(reference: Any, value: Any) -> str | None:
        try:
            same = compare(reference, value)
        except Exception as error:
            return f"compare() raised {type(error).__name__}: {error}"
        return None if same else "compare(reference, result) returned False"

    return differs


def judge(
    outcome: RunOutcome, reference: RunOutcome, compare: Callable[[Any, Any], str | None]
) -> None:
    """Set ``outcome.equal`` and ``outcome.difference`` against the reference: a run that was
    not requeued, or failed, differs; else ``compare(reference, result)`` says."""
    refused = next((r for r in outcome.interrupts if r.not_requeued is not None), None)
    if refused is not None:
        which = f"interrupt {refused.planned.index}" if refused.planned else "a signal"
        outcome.equal = False
        outcome.difference = f"not requeued after {which}: {refused.not_requeued}"
        return
    if not outcome.ok:
        outcome.equal = False
        outcome.difference = f"the run failed: {failure_line(outcome.error or outcome.state)}"
        return
    outcome.difference = compare(reference.value, outcome.value)
    outcome.equal = outcome.difference is None
