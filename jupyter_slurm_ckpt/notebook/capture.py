"""Split a ``%%slurm`` cell: run all but its last statement, turn the last one into submissions.

The last statement must be ``F(args)``, ``name = F(args)`` or ``name = [F(x) for x in xs]``. Its
call is rewritten to build a :class:`DelayedSubmission` instead of calling ``F``, so that Python
itself evaluates ``F``, the arguments, ``*args``/``**kwargs`` and the comprehension, in the
notebook's namespace.

The cell is compiled as a real file, ``<job folder>/cells/cell_<hash>.py``: registered in
``linecache`` for the kernel now, and written beside the jobs at submission, so that tracebacks of
code defined in the cell show its lines in the kernel and inside the job, after every requeue.
"""

from __future__ import annotations
import __future__

import ast
import contextlib
import hashlib
import linecache
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

from ..core.files import atomic_write_text, ensure_private_folder
from ..core.helpers import DelayedSubmission
from ..core.paths import PackagePaths

#: Compiler flags a cell may inherit from earlier cells (``from __future__ import ...``).
FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag

EXPECTED = "F(args), name = F(args) or name = [F(x) for x in xs]"


class CaptureError(ValueError):
    """The cell cannot be submitted as written (shown as a one-line ``UsageError``)."""


def delayed(function: Any, /, *args: Any, **kwargs: Any) -> DelayedSubmission[Any]:
    """What the cell's last call becomes: ``F(a, k=v)`` -> ``delayed(F, a, k=v)``."""
    return DelayedSubmission(function, *args, **kwargs)


@dataclass(frozen=True)
class CellSource:
    """The text of a cell and the file name it is compiled under."""

    text: str
    filename: str

    @classmethod
    def create(cls, text: str, folder: str | Path) -> CellSource:
        """Name the cell after its content, in the ``cells/`` folder of the job folder."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        path = PackagePaths.of(folder).cell(digest)
        return cls(text, str(path))

    def register(self) -> None:
        """Make the cell's lines available to tracebacks in this process.

        The entry has no modification time, which tells ``linecache.checkcache`` to keep it
        even while no file exists under that name (the file is written only at submission).
        """
        lines = self.text.splitlines(keepends=True)
        linecache.cache[self.filename] = (len(self.text), None, lines, self.filename)

    def write(self) -> Callable[[], None]:
        """Write the cell file (0600, atomically) if needed; returns an undo for a failed submit."""
        path = Path(self.filename)
        missing = []
        parent = path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        created = False

        def undo() -> None:
            if created:
                with contextlib.suppress(OSError):
                    path.unlink()
            for folder in missing:  # innermost first; only the empty ones we made
                with contextlib.suppress(OSError):
                    folder.rmdir()

        try:
            # The job folder itself first: nothing is written into a folder that is a file,
            # belongs to someone else or is writable by others.
            ensure_private_folder(path.parent.parent)
            ensure_private_folder(path.parent)
            created = not path.exists()
            if created:
                atomic_write_text(path, self.text)
        except BaseException:
            undo()
            raise
        return undo


@dataclass(frozen=True)
class Labels:
    """How the user wrote the callable and each argument, to name them in error messages."""

    function: str
    args: tuple[str | None, ...] = ()
    kwargs: dict[str, str] = field(default_factory=dict)

    def roots(self, submission: DelayedSubmission[Any]) -> list[tuple[str, Any]]:
        """The parts of one submission, each with the expression that produced it."""
        parts: list[tuple[str, Any]] = [(self.function, submission.function)]
        for index, value in enumerate(submission.args):
            label = self.args[index] if index < len(self.args) else None
            parts.append((label or f"args[{index}]", value))
        for key, value in submission.kwargs.items():
            parts.append((self.kwargs.get(key) or f"kwargs[{key!r}]", value))
        return parts


@dataclass
class CapturedCell:
    """A parsed cell: its body, and its last statement ready to be evaluated."""

    source: CellSource
    body: CodeType | None
    call: CodeType
    target: str | None
    array: bool
    labels: Labels
    line: int


def _describe(node: ast.stmt) -> str:
    if isinstance(node, ast.Expr):
        if isinstance(node.value, ast.Await):
            return "an await expression"
        if isinstance(node.value, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            return "a comprehension whose element is not a single call"
        return "an expression, not a call"
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return "an assignment of something other than a call"
    names = {
        ast.FunctionDef: "a function definition",
        ast.AsyncFunctionDef: "a function definition",
        ast.ClassDef: "a class definition",
        ast.Import: "an import",
        ast.ImportFrom: "an import",
        ast.For: "a for loop",
        ast.While: "a while loop",
        ast.If: "an if statement",
        ast.With: "a with statement",
        ast.Try: "a try statement",
        ast.Return: "a return statement",
        ast.AugAssign: "an augmented assignment",
        ast.Delete: "a del statement",
        ast.Pass: "a pass statement",
    }
    return names.get(type(node), f"a {type(node).__name__} statement")


def _target(node: ast.stmt, line: int) -> tuple[str | None, ast.expr]:
    """The name the job is bound to (or None) and the expression producing the call(s)."""
    if isinstance(node, ast.Expr):
        return None, node.value
    targets: list[ast.expr]
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    elif isinstance(node, ast.Assign):
        targets, value = list(node.targets), node.value
    else:
        raise CaptureError(_not_a_call(node, line))
    if len(targets) != 1 or not isinstance(targets[0], ast.Name):
        raise CaptureError(
            f"the last statement (line {line}) must bind the job to one name, as in {EXPECTED}"
        )
    return targets[0].id, value


def _not_a_call(node: ast.stmt, line: int) -> str:
    return (
        f"the last statement of the cell (line {line}) must be the call to submit, "
        f"{EXPECTED}; it is {_describe(node)}"
    )


def _helper_call(call: ast.Call) -> ast.Call:
    """``F(a, k=v)`` -> ``__import__(<this module>).delayed(F, a, k=v)`` (no name is injected)."""
    module = ast.Call(
        func=ast.Name(id="__import__", ctx=ast.Load()),
        args=[ast.Constant(__name__)],
        keywords=[
            ast.keyword(arg="fromlist", value=ast.List([ast.Constant("delayed")], ast.Load()))
        ],
    )
    helper = ast.Attribute(value=module, attr="delayed", ctx=ast.Load())
    new = ast.Call(func=helper, args=[call.func, *call.args], keywords=call.keywords)
    return ast.fix_missing_locations(ast.copy_location(new, call))


def _labels(call: ast.Call, text: str) -> Labels:
    def segment(node: ast.AST) -> str | None:
        found = ast.get_source_segment(text, node)
        return " ".join(found.split()) if found else None

    args: list[str | None] = []
    for arg in call.args:
        if isinstance(arg, ast.Starred):  # positions after *xs are known only at run time
            break
        args.append(segment(arg))
    kwargs = {kw.arg: segment(kw.value) or kw.arg for kw in call.keywords if kw.arg is not None}
    return Labels(segment(call.func) or "the callable", tuple(args), kwargs)


def parse_cell(source: CellSource, flags: int = 0) -> CapturedCell:
    """Check the cell's shape and compile it; runs none of it.

    Parameters
    ----------
    source
        The cell (after IPython's input transformations).
    flags
        The shell's compiler flags; only its ``__future__`` flags are kept.

    Raises
    ------
    CaptureError
        On a syntax error, an empty cell, or a last statement that is not a call.
    """
    flags &= FUTURE_FLAGS
    try:
        module = ast.parse(source.text, filename=source.filename)
    except SyntaxError as error:
        raise CaptureError(f"syntax error in the cell, line {error.lineno}: {error.msg}") from None
    if not module.body:
        raise CaptureError(f"the cell is empty: end it with the call to submit, {EXPECTED}")
    last = module.body[-1]
    line = last.lineno
    target, value = _target(last, line)
    array = False
    if isinstance(value, ast.ListComp) and isinstance(value.elt, ast.Call):
        array = True
        call = value.elt
        value.elt = _helper_call(call)
        expression: ast.expr = value
    elif isinstance(value, ast.Call):
        call = value
        expression = _helper_call(call)
    else:
        raise CaptureError(_not_a_call(last, line))
    labels = _labels(call, source.text)
    try:
        body = None
        if len(module.body) > 1:
            body_module = ast.Module(body=module.body[:-1], type_ignores=[])
            body = compile(body_module, source.filename, "exec", flags=flags, dont_inherit=True)
        code = compile(
            ast.Expression(expression), source.filename, "eval", flags=flags, dont_inherit=True
        )
    except SyntaxError as error:
        raise CaptureError(f"syntax error in the cell, line {error.lineno}: {error.msg}") from None
    return CapturedCell(source, body, code, target, array, labels, line)


def run_body(cell: CapturedCell, global_ns: dict[str, Any], local_ns: dict[str, Any]) -> None:
    """Run everything but the last statement in the notebook's namespace (as a cell would)."""
    __tracebackhide__ = True  # IPython hides this frame: the user sees their own code
    if cell.body is not None:
        exec(cell.body, global_ns, local_ns)


def evaluate(
    cell: CapturedCell, global_ns: dict[str, Any], local_ns: dict[str, Any]
) -> list[DelayedSubmission[Any]]:
    """Evaluate ``F`` and the arguments of the last statement (``F`` is not called).

    Raises
    ------
    CaptureError
        If a list comprehension produced no call.
    """
    __tracebackhide__ = True
    value = eval(cell.call, global_ns, local_ns)
    submissions = list(value) if cell.array else [value]
    if not submissions:
        raise CaptureError(
            f"the list comprehension of line {cell.line} produced no call: nothing to submit"
        )
    return submissions
