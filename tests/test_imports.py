"""The package's imports follow its stages, read from the source (AST), lazy imports included.

The folder list reads as the flow: ``core`` (the executor, imports nothing above it) <
``backends`` < ``views`` < ``verify`` < ``notebook`` and ``server`` (two front ends that do not
import each other) < the package's public face (``__init__``, ``helpers``). A module may import
its own stage and the stages below; no two modules may import each other, directly or through
others (a cycle), counting every import statement wherever it is (in a function too); an import
under ``if TYPE_CHECKING:`` is never run, so it counts for the stages but not for cycles.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import jupyter_slurm_ckpt

PACKAGE_DIR = Path(jupyter_slurm_ckpt.__file__).parent
NAME = "jupyter_slurm_ckpt"

#: The stage of each subpackage, from the bottom (``_version``: a leaf every stage may read).
STAGES = {
    "_version": 0, "core": 0, "backends": 1, "views": 2, "verify": 3, "notebook": 4, "server": 4
}
#: The public face: the package itself and its submitit-compatible ``helpers``.
TOP = 5
#: What the executor core and its backends never import (the worker starts fast without them,
#: and the core is usable from scripts).
NOTEBOOK_STACKS = ("IPython", "ipywidgets", "ipykernel", "jupyter_server", "tornado", "traitlets")


@dataclass(frozen=True)
class Edge:
    """One import statement of ``source``, resolved to the module it runs (``target``)."""

    source: str
    target: str
    line: int
    typing_only: bool


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((NAME, *parts))] = path
    return found


MODULES = _modules()


def _package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _typing_only_nodes(tree: ast.AST) -> set[int]:
    """The ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                found.update(id(child) for child in ast.walk(statement))
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement runs (of the package, or outside it by its first name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = _package_of(module).split(".")
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    if not origin.startswith(NAME):
        return [origin]
    # `from package import name` runs the submodule `package.name` when there is one.
    submodules = [f"{origin}.{alias.name}" for alias in node.names]
    found = [name for name in submodules if name in MODULES]
    return found if len(found) == len(submodules) else [origin, *found]


def _edges() -> list[Edge]:
    edges = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = _typing_only_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node):
                    edges.append(Edge(module, target, node.lineno, id(node) in typing_only))
    return edges


EDGES = _edges()


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES[parts[1]] if len(parts) > 1 and parts[1] in STAGES else TOP


def _where(edge: Edge) -> str:
    where = MODULES[edge.source].relative_to(PACKAGE_DIR.parent)
    return f"{where}:{edge.line} imports {edge.target}"


def test_every_import_of_the_package_names_a_module_that_exists() -> None:
    missing = [
        _where(edge)
        for edge in EDGES
        if edge.target.startswith(NAME) and edge.target not in MODULES
    ]
    assert missing == []


def _upward(edges: list[Edge]) -> list[str]:
    return [
        _where(edge)
        for edge in edges
        if edge.target in MODULES
        and (
            _stage(edge.target) > _stage(edge.source)
            # notebook and server share a stage but not their code
            or (
                _stage(edge.target) == _stage(edge.source) == STAGES["notebook"]
                and edge.target.split(".")[1] != edge.source.split(".")[1]
            )
        )
    ]


def test_no_module_imports_a_stage_above_its_own() -> None:
    assert _upward(EDGES) == []


def test_the_core_and_the_backends_import_no_notebook_stack() -> None:
    imported = [
        _where(edge)
        for edge in EDGES
        if _stage(edge.source) <= STAGES["backends"]
        and edge.target.split(".")[0] in NOTEBOOK_STACKS
    ]
    assert imported == []


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for edge in edges:
        if edge.target in MODULES and edge.target != edge.source:
            graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return components


def test_no_import_cycle_between_modules() -> None:
    assert _cycles([edge for edge in EDGES if not edge.typing_only]) == []


def test_the_checks_find_what_they_look_for() -> None:
    # A made-up upward import, a made-up import between the front ends and a made-up cycle.
    core, view = f"{NAME}.core.job", f"{NAME}.views.status"
    front, other = f"{NAME}.notebook.magic", f"{NAME}.server.jobs"
    made_up = [Edge(core, view, 1, False), Edge(view, core, 2, False), Edge(front, other, 3, False)]
    assert [_where(edge) for edge in made_up if edge.source != view] == _upward(made_up)
    assert _cycles(made_up) == [[core, view]]
    assert len(EDGES) > 200 and any(edge.source == f"{NAME}.core.executor" for edge in EDGES)
