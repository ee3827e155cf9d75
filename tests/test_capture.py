"""capture.py without IPython: splitting a cell, evaluating its last call, the cell file."""

from __future__ import annotations

import linecache
import os
import stat
import traceback
from pathlib import Path
from typing import Any

import pytest

from jupyter_slurm_ckpt.core.helpers import DelayedSubmission
from jupyter_slurm_ckpt.core.info import callable_name
from jupyter_slurm_ckpt.notebook.capture import (
    CaptureError,
    CellSource,
    evaluate,
    parse_cell,
    run_body,
)


def _run(text: str, folder: Path, ns: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    cell = parse_cell(CellSource.create(text, folder))
    ns = {"__name__": "__main__"} if ns is None else ns
    cell.source.register()
    run_body(cell, ns, ns)
    return cell, ns


def test_single_call_is_captured_not_called(tmp_path: Path) -> None:
    text = (
        "calls = []\n"
        "def train(a, b=0, **kw):\n"
        "    calls.append(a)\n"
        "    return a + b\n"
        "args = (1,)\n"
        "opts = {'b': 2, 'c': 3}\n"
        "job = train(*args, **opts)\n"
    )
    cell, ns = _run(text, tmp_path)
    (submission,) = evaluate(cell, ns, ns)
    assert cell.target == "job" and not cell.array
    assert ns["calls"] == []  # F was not called in the notebook
    assert submission.function is ns["train"]
    assert submission.args == (1,) and submission.kwargs == {"b": 2, "c": 3}
    assert submission.result() == 3


def test_function_is_evaluated_in_the_notebook(tmp_path: Path) -> None:
    text = (
        "made = []\n"
        "class Net:\n"
        "    def __init__(self):\n"
        "        made.append(1)\n"
        "    def __call__(self, x):\n"
        "        return x\n"
        "Net()(5)\n"
    )
    cell, ns = _run(text, tmp_path)
    (submission,) = evaluate(cell, ns, ns)
    assert cell.target is None
    assert ns["made"] == [1]  # F itself (Net()) is built here, only its call is deferred
    assert isinstance(submission.function, ns["Net"])
    assert submission.function.__class__.__module__ == "__main__"


def test_list_comprehension_becomes_an_array(tmp_path: Path) -> None:
    text = (
        "def f(x, scale=1):\n    return x * scale\n"
        "jobs = [f(x, scale=k) for x in range(4) if x != 2 for k in (10,)]\n"
    )
    cell, ns = _run(text, tmp_path)
    submissions = evaluate(cell, ns, ns)
    assert cell.array and cell.target == "jobs"
    assert [s.args for s in submissions] == [(0,), (1,), (3,)]
    assert all(s.kwargs == {"scale": 10} for s in submissions)
    assert "x" not in ns  # the comprehension's variable stays in the comprehension


def test_annotated_assignment_and_keyword_named_function(tmp_path: Path) -> None:
    text = "def f(function):\n    return function\njob: object = f(function=3)\n"
    cell, ns = _run(text, tmp_path)
    (submission,) = evaluate(cell, ns, ns)
    assert cell.target == "job" and submission.kwargs == {"function": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\nx + 1\n", r"\(line 2\) .*it is an expression, not a call"),
        ("def f():\n    pass\n", r"it is a function definition"),
        ("import os\n", r"it is an import"),
        ("a, b = f(1)\n", r"bind the job to one name"),
        ("job = 3\n", r"assignment of something other than a call"),
        ("jobs = [x for x in range(3)]\n", r"assignment of something other than a call"),
        ("for i in range(3):\n    f(i)\n", r"it is a for loop"),
        ("await f()\n", r"await expression"),
        ("", r"the cell is empty"),
        ("   \n# only a comment\n", r"the cell is empty"),
        ("def f(:\n    pass\nf()\n", r"syntax error in the cell, line 1"),
    ],
)
def test_bad_last_statements(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CaptureError, match=message) as caught:
        parse_cell(CellSource.create(text, tmp_path))
    assert "\n" not in str(caught.value)
    assert not tmp_path.joinpath("cells").exists()


def test_parse_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    parse_cell(CellSource.create(f"open({str(marker)!r}, 'w').close()\nf(open)\n", tmp_path))
    assert not marker.exists()


def test_empty_comprehension_is_refused(tmp_path: Path) -> None:
    cell, ns = _run("def f(x):\n    return x\njobs = [f(x) for x in []]\n", tmp_path)
    with pytest.raises(CaptureError, match="produced no call"):
        evaluate(cell, ns, ns)


def test_labels_name_what_the_user_wrote(tmp_path: Path) -> None:
    text = "def f(*a, **k):\n    pass\nmodel = 1\njob = f(model, 2 + 3, data=model)\n"
    cell, ns = _run(text, tmp_path)
    (submission,) = evaluate(cell, ns, ns)
    labels = [label for label, _ in cell.labels.roots(submission)]
    assert labels == ["f", "model", "2 + 3", "model"]
    starred = _run("def f(*a):\n    pass\njob = f(1, *[2, 3])\n", tmp_path)[0]
    assert [lbl for lbl, _ in starred.labels.roots(DelayedSubmission(len, 1, 2, 3))] == [
        "f", "1", "args[1]", "args[2]"
    ]


def test_cell_lines_appear_in_tracebacks_and_the_file(tmp_path: Path) -> None:
    text = "def boom(x):\n    y = x + 1\n    raise ValueError(f'boom {y}')\njob = boom(1)\n"
    cell, ns = _run(text, tmp_path / "jobs")
    (submission,) = evaluate(cell, ns, ns)
    linecache.checkcache()  # the entry survives although no file exists yet
    with pytest.raises(ValueError) as caught:
        submission.result()
    trace = "".join(traceback.format_exception(caught.value))
    assert cell.source.filename in trace
    assert "raise ValueError(f'boom {y}')" in trace
    assert not Path(cell.source.filename).exists()

    undo = cell.source.write()
    path = Path(cell.source.filename)
    assert path.read_text() == text
    assert path.parent == tmp_path / "jobs" / "cells"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "jobs").st_mode) == 0o700
    undo()  # a failed submission leaves nothing it created
    assert not (tmp_path / "jobs").exists()


def test_same_cell_same_file_kept_on_undo(tmp_path: Path) -> None:
    first = CellSource.create("f()\n", tmp_path)
    assert CellSource.create("f()\n", tmp_path).filename == first.filename
    assert CellSource.create("g()\n", tmp_path).filename != first.filename
    first.write()
    undo = first.write()  # already there: the undo must not remove a file another job uses
    undo()
    assert Path(first.filename).exists()


def test_folder_template_puts_cells_at_its_root(tmp_path: Path) -> None:
    source = CellSource.create("f()\n", tmp_path / "logs" / "%j")
    assert Path(source.filename).parent == tmp_path / "logs" / "cells"


def test_future_flags_are_inherited(tmp_path: Path) -> None:
    import __future__

    flag = __future__.annotations.compiler_flag
    text = "def f(x: Undefined) -> None:\n    pass\nf(1)\n"
    cell = parse_cell(CellSource.create(text, tmp_path), flags=flag)
    ns: dict[str, Any] = {}
    run_body(cell, ns, ns)  # without the flag the annotation would raise NameError
    with pytest.raises(NameError):
        run_body(parse_cell(CellSource.create(text, tmp_path)), {}, {})


def test_callable_names() -> None:
    class Net:
        def __call__(self) -> None:
            pass

        def fit(self) -> None:
            pass

    assert callable_name(Net()) == "Net"
    assert callable_name(Net().fit) == "fit"
    assert callable_name(Net) == "Net"
    assert callable_name(lambda: 0) == "lambda"
    assert callable_name(len) == "len"
