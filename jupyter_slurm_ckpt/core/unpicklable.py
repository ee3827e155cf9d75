"""Which part of an object cannot be pickled, named as a path a user can read.

``find_unpicklable`` walks what pickling an object pickles in turn (attributes, closure
variables, globals a by-value function uses, container items) down to the innermost part that
fails, and ``unpicklable_message`` says it in one line with the fix (``__getstate__``). The
notebook's preflight uses it before submitting; the worker uses it when a checkpoint's new
payload cannot be pickled.
"""

from __future__ import annotations

import contextlib
import dis
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any

import cloudpickle

from . import payload
from .helpers import DelayedSubmission

_MAX_CHILDREN = 200  # per container, when searching for a culprit
_MAX_DEPTH = 40
_CLASS_SKIP = frozenset({"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__"})
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})


def is_by_value(obj: Any) -> bool:
    """Whether cloudpickle ships ``obj`` (a function or class) by value rather than by name."""
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str) or module_name == "__main__":
        return True
    registered = cloudpickle.list_registry_pickle_by_value()
    if any(module_name == m or module_name.startswith(m + ".") for m in registered):
        return True
    if "<locals>" in getattr(obj, "__qualname__", ""):
        return True
    return module_name not in sys.modules


def _global_names(code: CodeType) -> Iterator[str]:
    for instruction in dis.get_instructions(code):
        if instruction.opname in _GLOBAL_OPS and isinstance(instruction.argval, str):
            yield instruction.argval
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _global_names(const)


@dataclass
class Node:
    """One object reachable from a payload, with the expression that reaches it."""

    path: str
    obj: Any
    note: str = ""  # set where the path restarts at a global or a class


def function_children(node: Node) -> Iterator[Node]:
    function = node.obj
    if not is_by_value(function):
        return
    code = function.__code__
    cells = function.__closure__ or ()
    for name, cell in zip(code.co_freevars, cells):
        with contextlib.suppress(ValueError):  # an empty cell
            yield Node(name, cell.cell_contents, f"a variable captured by {function.__qualname__}")
    namespace = function.__globals__
    where = "notebook" if namespace.get("__name__") == "__main__" else "module"
    seen = set()
    for name in _global_names(code):
        if name in namespace and name not in seen:
            seen.add(name)
            note = f"a {where} global used by {function.__qualname__}"
            yield Node(name, namespace[name], note)
    for index, default in enumerate(function.__defaults__ or ()):
        yield Node(f"{node.path}.__defaults__[{index}]", default)


def class_children(node: Node) -> Iterator[Node]:
    cls = node.obj
    if not is_by_value(cls):
        return
    for name, value in vars(cls).items():
        if name in _CLASS_SKIP:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        yield Node(f"{cls.__qualname__}.{name}", value)
    for base in cls.__bases__:
        if base is not object and is_by_value(base):
            yield Node(base.__qualname__, base, f"a base class of {cls.__qualname__}")


_MODULE_MEMBERS = ("_parameters", "_buffers", "_modules")


def _member_path(path: str, name: str) -> str:
    if name.isidentifier():
        return f"{path}.{name}"
    return f"{path}[{name}]" if name.isdigit() else f"{path}[{name!r}]"


def _is_torch_module(obj: Any) -> bool:
    """A torch ``nn.Module`` pickled as torch pickles one (no ``__getstate__`` of its own)."""
    torch = sys.modules.get("torch")  # a torch module exists only where torch is loaded
    module_class = getattr(getattr(torch, "nn", None), "Module", None)
    return (
        isinstance(module_class, type)
        and isinstance(obj, module_class)
        and getattr(type(obj), "__getstate__", None) is getattr(module_class, "__getstate__", None)
    )


def _torch_module_children(node: Node) -> Iterator[Node]:
    """A torch module's submodules, parameters and buffers by the names its user writes
    (``model.encoder.weight``, ``model[0]`` in a ``Sequential``), then its other attributes."""
    module, path = node.obj, node.path
    for group in _MODULE_MEMBERS:
        for name, value in getattr(module, group, {}).items():
            if value is not None:
                yield Node(_member_path(path, str(name)), value)
    for key, value in list(vars(module).items()):
        if key not in _MODULE_MEMBERS:
            yield Node(f"{path}.{key}", value)


def _instance_children(node: Node) -> Iterator[Node]:
    obj, path = node.obj, node.path
    cls = type(obj)
    custom = getattr(cls, "__getstate__", None)
    if _is_torch_module(obj):
        yield from _torch_module_children(node)
    elif custom is not None and custom is not getattr(object, "__getstate__", None):
        try:
            state = obj.__getstate__()
        except Exception:
            state = None
        if isinstance(state, dict):
            for key, value in state.items():
                yield Node(f"{path}.__getstate__()[{key!r}]", value)
        elif state is not None:
            yield Node(f"{path}.__getstate__()", state)
    else:
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict):
            for key, value in list(attributes.items()):
                yield Node(f"{path}.{key}", value)
        for klass in cls.__mro__:
            slots = getattr(klass, "__slots__", ())
            for slot in [slots] if isinstance(slots, str) else slots:
                if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                    yield Node(f"{path}.{slot}", getattr(obj, slot))
    if is_by_value(cls):
        yield Node(cls.__qualname__, cls, f"the class of {path}")


def children(node: Node) -> Iterator[Node]:
    """What pickling ``node.obj`` pickles in turn (the parts worth naming to a user)."""
    obj, path = node.obj, node.path
    if isinstance(obj, (str, bytes, bytearray, int, float, complex, bool, type(None))):
        return
    if isinstance(obj, DelayedSubmission):
        yield Node(f"{path}.function", obj.function)
        for index, arg in enumerate(obj.args):
            yield Node(f"{path}.args[{index}]", arg)
        for key, value in obj.kwargs.items():
            yield Node(f"{path}.kwargs[{key!r}]", value)
    elif isinstance(obj, dict):
        for key, value in list(obj.items())[:_MAX_CHILDREN]:
            yield Node(f"{path}[{key!r}]", value)
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj[:_MAX_CHILDREN]):
            yield Node(f"{path}[{index}]", value)
    elif isinstance(obj, (set, frozenset)):
        for value in list(obj)[:_MAX_CHILDREN]:
            yield Node(f"an element of {path}", value)
    elif isinstance(obj, types.MethodType):
        yield Node(f"{path}.__self__", obj.__self__)
        yield Node(f"{path}.__func__", obj.__func__)
    elif isinstance(obj, FunctionType):
        yield from function_children(node)
    elif isinstance(obj, type):
        yield from class_children(node)
    elif isinstance(obj, types.ModuleType):
        return  # pickled by name
    else:
        yield from _instance_children(node)


# Sizes are measured by pickling into a byte counter: a part of several GB costs no memory.


def _pickle_error(obj: Any) -> Exception | None:
    try:
        payload.pickled_size(obj)
    except Exception as error:
        return error
    return None

def find_unpicklable(roots: list[tuple[str, Any]]) -> tuple[list[Node], Exception] | None:
    """The chain of objects down to the innermost one that cannot be pickled, and its error."""
    for label, obj in roots:
        error = _pickle_error(obj)
        if error is None:
            continue
        chain = [Node(label, obj)]
        seen = {id(obj)}
        while len(chain) < _MAX_DEPTH:
            for child in children(chain[-1]):
                if id(child.obj) in seen:
                    continue
                seen.add(id(child.obj))
                child_error = _pickle_error(child.obj)
                if child_error is not None:
                    chain.append(child)
                    error = child_error
                    break
            else:
                break
        return chain, error
    return None


def error_text(error: Exception) -> str:
    """``TypeError: cannot pickle '_thread.lock' object``, on one line of bounded length."""
    text = " ".join(str(error).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def unpicklable_message(chain: list[Node], error: Exception) -> str:
    """'cannot pickle self.lock: ...; give Model a __getstate__ that leaves out 'lock' ...'."""
    culprit = chain[-1]
    note = next((node.note for node in reversed(chain) if node.note), "")
    where = f" ({note})" if note else ""
    advice = "make it picklable, or create it inside the job (in __call__) instead of here"
    # The user's own class closest to the culprit is the one to give a __getstate__.
    for owner, below in zip(reversed(chain[:-1]), reversed(chain[1:])):
        cls = type(owner.obj)
        is_instance = not isinstance(owner.obj, (type, FunctionType, types.MethodType))
        if is_instance and is_by_value(cls) and below.path.startswith(owner.path + "."):
            attribute = below.path[len(owner.path) + 1 :].split(".")[0].split("[")[0]
            advice = (
                f"give {cls.__qualname__} a __getstate__ that leaves out {attribute!r} "
                "(and recreate it in __setstate__ or in __call__)"
            )
            break
    return f"cannot pickle {culprit.path}{where}: {error_text(error)}; {advice}"


def explain_unpicklable(roots: list[tuple[str, Any]], error: Exception, what: str) -> str:
    """One line on why ``roots`` (named parts of ``what``) cannot be pickled, given the
    ``error`` pickling the whole raised: the failing attribute path and its fix when found."""
    found = find_unpicklable(roots)
    if found is None:
        return f"cannot pickle {what}: {error_text(error)}"
    return unpicklable_message(*found)
