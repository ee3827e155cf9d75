"""Pickle a submission once before submitting it, and explain what goes wrong.

cloudpickle already pickles what the notebook defines (``__main__``) by value; ``--by-value``
adds local helper modules for one submission. The preflight pickles each payload once,
straight into a file of the job folder that has no name yet (``core.payload.spool``), which the
executor then submits as it is; only when that fails does it pickle parts again, to turn the
failure into a one-line explanation: the attribute path that cannot be pickled, the parts that
make a payload too big. It also names the large notebook globals a payload drags along. Nothing
past the size limit is written or held in memory: an oversized payload is counted, then refused.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import threading
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType
from typing import Any

import cloudpickle

from ..core import array_payload, payload
from ..core.errors import JobFolderError
from ..core.files import WriteError
from ..core.helpers import DelayedSubmission
from ..core.payload import format_size
from ..core.unpicklable import (
    Node,
    children,
    class_children,
    explain_unpicklable,
    function_children,
    is_by_value,
)

# Registering a module by value is process-wide: one submission at a time may do it.
_BY_VALUE_LOCK = threading.RLock()


class SerializationError(ValueError):
    """A payload cannot be submitted (shown as a one-line ``UsageError``)."""


@contextlib.contextmanager
def pickled_by_value(modules: Iterable[str]) -> Iterator[None]:
    """Pickle ``modules`` by value inside the block, then restore cloudpickle's registry.

    Modules the user had registered already stay registered.

    Raises
    ------
    SerializationError
        If a module cannot be imported.
    """
    with _BY_VALUE_LOCK:
        added: list[types.ModuleType] = []
        try:
            for name in modules:
                try:
                    module = importlib.import_module(name)
                except Exception as error:
                    raise SerializationError(
                        f"--by-value {name}: importing it failed ({type(error).__name__}: {error})"
                    ) from None
                if name not in cloudpickle.list_registry_pickle_by_value():
                    cloudpickle.register_pickle_by_value(module)
                    added.append(module)
            yield
        finally:
            for module in added:
                cloudpickle.unregister_pickle_by_value(module)


def _pickled_size(obj: Any) -> int | None:
    try:
        return payload.pickled_size(obj)
    except Exception:
        return None


def biggest_parts(roots: list[tuple[str, Any]], total: int, top: int = 3) -> list[tuple[str, int]]:
    """The largest parts of a payload, followed down as long as one part dominates its parent.

    Only parts of at least a twentieth of ``total`` are named (a small argument beside a large
    model is no answer). Each part is measured by pickling it into a byte counter, so naming
    the parts of a payload of several GB costs no memory.
    """
    threshold = max(total // 20, 64 * 1024)
    seen: set[int] = set()

    def expand(node: Node, size: int, depth: int) -> list[tuple[str, int]]:
        if depth >= 6 or size < threshold:
            return [(node.path, size)]
        big = []
        for child in children(node):
            if id(child.obj) in seen:
                continue
            seen.add(id(child.obj))
            child_size = _pickled_size(child.obj)
            if child_size is not None and child_size >= threshold:
                big.append((child, child_size))
        if not big or max(s for _, s in big) * 2 < size:
            return [(node.path, size)]
        return [part for child, s in big for part in expand(child, s, depth + 1)]

    parts: list[tuple[str, int]] = []
    for label, obj in roots:
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        size = _pickled_size(obj)
        if size is not None and size >= threshold:
            parts.extend(expand(Node(label, obj), size, 0))
    return sorted(parts, key=lambda item: -item[1])[:top]


def captured_globals(roots: list[tuple[str, Any]]) -> list[tuple[str, Any, str]]:
    """Notebook globals pickled along with the code that uses them: (name, value, used by)."""
    found: dict[str, tuple[str, Any, str]] = {}
    stack = [Node(label, obj) for label, obj in roots]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node.obj) in seen:
            continue
        seen.add(id(node.obj))
        obj = node.obj
        if isinstance(obj, FunctionType):
            for child in function_children(node):
                value = child.obj
                if isinstance(value, (FunctionType, type, types.ModuleType)):
                    stack.append(child)
                elif child.note.startswith("a notebook global"):
                    found.setdefault(child.path, (child.path, value, obj.__qualname__))
        elif isinstance(obj, type):
            stack.extend(class_children(node))
        elif isinstance(obj, types.MethodType):
            stack.append(Node(node.path, obj.__func__))
        elif not isinstance(obj, types.ModuleType) and is_by_value(type(obj)):
            stack.append(Node(type(obj).__qualname__, type(obj)))
    return list(found.values())


def check_callable(label: str, function: Any) -> None:
    """Refuse what the job could call but never run to a result it can send back.

    Raises
    ------
    SerializationError
        If ``function`` is not callable, or calling it only creates a generator or a coroutine
        (the job would return that object, unrun, and could not pickle it).
    """
    if not callable(function):
        raise SerializationError(
            f"{label} is not callable (it is {type(function).__name__}): the last statement "
            "must call a function, a class or a callable object"
        )
    plain = inspect.isroutine(function) or isinstance(function, functools.partial)
    code = function if plain else type(function).__call__  # a callable object's method
    if inspect.isgeneratorfunction(code) or inspect.isasyncgenfunction(code):
        raise SerializationError(
            f"{label} is a generator function: in the job it would only create a generator, "
            "which runs nothing and cannot be sent back; return a list instead"
        )
    if inspect.iscoroutinefunction(code):
        raise SerializationError(
            f"{label} is a coroutine function (async def): in the job it would only create a "
            "coroutine, which runs nothing; submit a function that calls asyncio.run(...)"
        )


@dataclass
class Preflight:
    """What the preflight learnt: the size of each payload and warnings for the user.

    Given a folder, the preflight also keeps each payload it pickled (``pickled``), ready for
    ``executor.submit_pickled``: a submission pickles its payloads once. Whoever receives the
    report calls :meth:`discard` when done (placed payloads are not affected).
    """

    sizes: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pickled: list[payload.Pickled] = field(default_factory=list)

    def discard(self) -> None:
        """Drop the pickled payloads that were not submitted."""
        for item in self.pickled:
            item.discard()


def preflight(
    submissions: list[tuple[DelayedSubmission[Any], list[tuple[str, Any]]]],
    max_bytes: int,
    warn_global_bytes: int,
    folder: Path | None = None,
) -> Preflight:
    """Pickle every payload once, as the executor will, and check it.

    Parameters
    ----------
    submissions
        Each payload with its named parts (see ``capture.Labels.roots``).
    max_bytes
        Refuse a payload larger than this.
    warn_global_bytes
        Warn about a captured notebook global larger than this.
    folder
        The job folder (it need not exist yet): each payload is pickled straight into a file
        of its filesystem that has no name yet (``payload.spool``), kept in the report. Without
        it (``--dry-run``), payloads are pickled into a byte counter. Either way nothing is
        visible on disk, and nothing past ``max_bytes`` is written or held in memory.

    Raises
    ------
    SerializationError
        When a payload cannot be pickled (naming the attribute path that fails), is too big
        (naming its biggest parts), its callable cannot run in a job (see
        :func:`check_callable`), or the filesystem fails while it is written.
    JobFolderError
        When ``folder`` cannot hold job files (see ``core.files.ensure_private_folder``).
    """
    report = Preflight()
    warned: set[str] = set()
    try:
        for _, roots in submissions:
            check_callable(*roots[0])
        if folder is not None and len(submissions) > 1:  # an array: one file for them all
            report.pickled = _pickle_array(submissions, folder, max_bytes)
        for index, (submission, roots) in enumerate(submissions):
            which = f"payload {index} of the array" if len(submissions) > 1 else "the payload"
            if report.pickled[index:]:
                size = report.pickled[index].size
            else:
                size = _pickle_once(report, submission, roots, which, folder, max_bytes)
            report.sizes.append(size)
            if size <= warn_global_bytes:
                continue
            for name, value, user in captured_globals(roots):
                global_size = _pickled_size(value) if name not in warned else None
                if global_size is not None and global_size > warn_global_bytes:
                    warned.add(name)
                    report.warnings.append(
                        f"warning: the payload captures the notebook global {name!r} "
                        f"({format_size(global_size)}, used by {user}); pass it as an argument "
                        "or save it to a file and load it in the job"
                    )
    except BaseException:
        report.discard()
        raise
    return report


def _pickle_array(
    submissions: list[tuple[DelayedSubmission[Any], list[tuple[str, Any]]]],
    folder: Path,
    max_bytes: int,
) -> list[payload.Pickled]:
    """A job array's payloads pickled once into one file (``core.array_payload``); when that
    fails, each is pickled again into a counter, to explain which one fails and why."""
    try:
        return list(array_payload.spool_array([s for s, _ in submissions], folder, max_bytes))
    except JobFolderError:
        raise
    except Exception as error:
        for index, (submission, roots) in enumerate(submissions):
            which = f"payload {index} of the array"
            _pickle_once(Preflight(), submission, roots, which, None, max_bytes)
        if isinstance(error, WriteError):
            message = f"cannot write the payloads into {folder}: {error.strerror}"
        else:
            message = explain_unpicklable(submissions[0][1], error, "the submission")
        raise SerializationError(message) from None


def _pickle_once(
    report: Preflight,
    submission: DelayedSubmission[Any],
    roots: list[tuple[str, Any]],
    which: str,
    folder: Path | None,
    max_bytes: int,
) -> int:
    """Pickle one payload (into ``folder``'s filesystem, or a counter); diagnose a failure."""
    try:
        if folder is None:
            size = payload.serialized_size(submission)  # measured, never held in memory
            if size > max_bytes:
                raise payload.PayloadTooLargeError(size, max_bytes)
            return size
        pickled = payload.spool(submission, folder, max_bytes)
    except payload.PayloadTooLargeError as error:
        # Only now is the payload pickled again, part by part, to name the biggest parts.
        parts = ", ".join(
            f"{path} ({format_size(part)})" for path, part in biggest_parts(roots, error.size)
        )
        raise SerializationError(
            f"{which} is {format_size(error.size)}, over the limit of {format_size(max_bytes)} "
            f"(SlurmMagics.max_payload_mb); biggest parts: {parts or 'unknown'}; "
            "save large data to a file and pass its path"
        ) from None
    except JobFolderError:
        raise
    except WriteError as error:
        raise SerializationError(f"cannot write {which} into {folder}: {error.strerror}") from None
    except Exception as error:
        raise SerializationError(explain_unpicklable(roots, error, "the submission")) from None
    report.pickled.append(pickled)
    return pickled.size
