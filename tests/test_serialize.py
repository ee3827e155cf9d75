"""serialize.py without IPython: the preflight's diagnoses and ``--by-value`` registration."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.helpers import DelayedSubmission
from jupyter_slurm_ckpt.core.unpicklable import find_unpicklable
from jupyter_slurm_ckpt.notebook.serialize import (
    SerializationError,
    biggest_parts,
    pickled_by_value,
    preflight,
)

MB = 1024**2


def notebook(code: str) -> dict[str, Any]:
    """Run ``code`` as a notebook cell would: its classes and functions live in ``__main__``."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(textwrap.dedent(code), ns)
    return ns


def check(fn: Any, *args: Any, max_mb: float = 100, warn_mb: float = 10, label: str = "") -> Any:
    submission = DelayedSubmission(fn, *args)
    roots = [(label or getattr(fn, "__name__", "F"), fn)]
    roots += [(f"args[{i}]", a) for i, a in enumerate(args)]
    return preflight([(submission, roots)], int(max_mb * MB), int(warn_mb * MB))


LOCKED = """
import logging, threading

class Logger:
    def __init__(self):
        self._lock = threading.Lock()

class NetworkTraining:
    def __init__(self, logger=None):
        self.logger = logger if logger is not None else Logger()
        self.model = {"weights": [1, 2, 3]}
    def __call__(self, path):
        return path
"""


def test_unpicklable_attribute_path_and_getstate_advice() -> None:
    ns = notebook(LOCKED)
    trainer = ns["NetworkTraining"]()
    with pytest.raises(SerializationError) as caught:
        check(trainer, "ckpt/net.pt", label="NetworkTraining()")
    message = str(caught.value)
    assert "cannot pickle NetworkTraining().logger._lock" in message
    assert "TypeError" in message and "lock" in message
    # The closest class defined in the notebook is the one to fix.
    assert "give Logger a __getstate__ that leaves out '_lock'" in message
    assert "\n" not in message


def test_advice_names_the_notebook_class_owning_a_library_object() -> None:
    ns = notebook(LOCKED)
    trainer = ns["NetworkTraining"](logger=ns["logging"].StreamHandler())
    with pytest.raises(SerializationError) as caught:
        check(trainer, "x", label="NetworkTraining()")
    message = str(caught.value)
    assert "cannot pickle NetworkTraining().logger.lock" in message
    assert "give NetworkTraining a __getstate__ that leaves out 'logger'" in message


def test_unpicklable_notebook_global_used_by_a_function() -> None:
    ns = notebook(
        """
        import threading
        lock = threading.Lock()
        def helper():
            with lock:
                return 1
        def train(x):
            return helper() + x
        """
    )
    with pytest.raises(SerializationError) as caught:
        check(ns["train"], 1)
    message = str(caught.value)
    assert "cannot pickle lock (a notebook global used by helper)" in message


def test_unpicklable_closure_variable_and_argument() -> None:
    ns = notebook(
        """
        import threading
        def make():
            guard = threading.Lock()
            def train():
                return guard.locked()
            return train
        """
    )
    with pytest.raises(SerializationError, match=r"cannot pickle guard \(a variable captured by"):
        check(ns["make"]())
    with pytest.raises(SerializationError, match=r"cannot pickle args\[1\]\['k'\]"):
        check(print, 1, {"k": threading.Lock()})


def test_a_method_is_followed_to_its_instance() -> None:
    ns = notebook(LOCKED)
    trainer = ns["NetworkTraining"]()
    found = find_unpicklable([("trainer.__call__", trainer.__call__)])
    assert found is not None
    assert found[0][-1].path == "trainer.__call__.__self__.logger._lock"
    assert find_unpicklable([("ok", ns["NetworkTraining"].__call__)]) is None


def test_payload_over_the_limit_names_its_biggest_parts() -> None:
    ns = notebook(
        """
        import os
        class Big:
            def __init__(self):
                self.data = os.urandom(3 * 1024 * 1024)
                self.parts = {"small": 1, "large": os.urandom(2 * 1024 * 1024)}
            def __call__(self):
                return len(self.data)
        """
    )
    big = ns["Big"]()
    with pytest.raises(SerializationError) as caught:
        check(big, max_mb=1, label="Big()")
    message = str(caught.value)
    assert "the payload is 5.0 MB, over the limit of 1.0 MB" in message
    assert "Big().data (3.0 MB)" in message
    assert "Big().parts['large'] (2.0 MB)" in message
    assert message.index("Big().data") < message.index("Big().parts")
    assert "SlurmMagics.max_payload_mb" in message
    assert check(big, max_mb=6).sizes[0] > 5 * MB  # under a raised limit it passes


def test_biggest_parts_follow_a_dominant_part_down() -> None:
    nested = {"a": {"b": {"c": b"x" * (2 * MB)}}, "tiny": 1}
    parts = biggest_parts([("cfg", nested)], len(cloudpickle.dumps(nested)))
    assert parts[0][0] == "cfg['a']['b']['c']"


def test_large_captured_global_warns_with_its_name() -> None:
    ns = notebook(
        """
        blob = b"y" * (3 * 1024 * 1024)
        class Model:
            def __call__(self):
                return len(blob)
        def by_argument(data):
            return len(data)
        """
    )
    report = check(ns["Model"](), warn_mb=1)
    assert len(report.warnings) == 1
    assert "captures the notebook global 'blob' (3.0 MB, used by Model.__call__)" in (
        report.warnings[0]
    )
    assert check(ns["by_argument"], ns["blob"], warn_mb=1).warnings == []  # an argument is fine
    assert check(ns["Model"](), warn_mb=10).warnings == []  # under the threshold


@pytest.fixture
def helper_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "jsc_helper_mod.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "jsc_helper_mod"
    sys.modules.pop("jsc_helper_mod", None)


def test_by_value_module_ships_its_code_for_this_submission_only(
    helper_module: str, tmp_path: Path
) -> None:
    with pickled_by_value([helper_module]):
        assert helper_module in cloudpickle.list_registry_pickle_by_value()
        module = sys.modules[helper_module]
        blob = payload.serialize(DelayedSubmission(module.double, 21))
    assert helper_module not in cloudpickle.list_registry_pickle_by_value()
    (tmp_path / "payload.pkl").write_bytes(blob)
    # A fresh interpreter that cannot import the helper module still runs the payload.
    code = (
        "import sys; from jupyter_slurm_ckpt.core import payload;"
        "print(payload.load(sys.argv[1]).result())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "payload.pkl")],
        capture_output=True, text=True, cwd="/", timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    # By reference (outside the block) the same payload needs the module.
    blob = payload.serialize(DelayedSubmission(sys.modules[helper_module].double, 21))
    (tmp_path / "payload.pkl").write_bytes(blob)
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "payload.pkl")],
        capture_output=True, text=True, cwd="/", timeout=120, check=False,
    )
    assert done.returncode != 0 and "jsc_helper_mod" in done.stderr


def test_by_value_keeps_a_users_registration_and_cleans_up_on_error(helper_module: str) -> None:
    module = __import__(helper_module)
    cloudpickle.register_pickle_by_value(module)
    try:
        with pickled_by_value([helper_module]):
            pass
        assert helper_module in cloudpickle.list_registry_pickle_by_value()
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    with pytest.raises(RuntimeError), pickled_by_value([helper_module]):
        raise RuntimeError("submission failed")
    assert helper_module not in cloudpickle.list_registry_pickle_by_value()


def test_by_value_import_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jsc_broken_mod.py").write_text("raise ImportError('needs torch')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    expected = r"--by-value jsc_broken_mod: importing it failed \(ImportError: needs torch\)"
    with pytest.raises(SerializationError, match=expected), pickled_by_value(["jsc_broken_mod"]):
        pass


def test_by_value_registration_is_serialised_between_threads(helper_module: str) -> None:
    entered = threading.Event()
    with pickled_by_value([helper_module]):
        thread = threading.Thread(target=lambda: _enter(entered, helper_module))
        thread.start()
        thread.join(0.2)
        assert not entered.is_set()  # the other submission waits for this one
    thread.join(60)
    assert entered.is_set()
    assert helper_module not in cloudpickle.list_registry_pickle_by_value()


def _enter(entered: threading.Event, module: str) -> None:
    with pickled_by_value([module]):
        entered.set()


def test_preflight_pickles_into_the_folder_once_and_leaves_nothing_when_refused(
    tmp_path: Path,
) -> None:
    ns = notebook(LOCKED)
    folder = tmp_path / "jobs"  # not created yet: a refused first cell must not create it
    before = tmp_path.stat().st_mtime_ns
    roots = [("NetworkTraining()", ns["NetworkTraining"]())]
    with pytest.raises(SerializationError, match="cannot pickle NetworkTraining"):
        preflight([(DelayedSubmission(roots[0][1], "x"), roots)], 100 * MB, 10 * MB, folder)
    big = [("len", len), ("weights", b"w" * (3 * MB))]
    with pytest.raises(SerializationError, match=r"the payload is 3\.0 MB, over the limit"):
        preflight([(DelayedSubmission(len, big[1][1]), big)], 1 * MB, 10 * MB, folder)
    assert os.listdir(tmp_path) == [] and tmp_path.stat().st_mtime_ns == before
    report = preflight([(DelayedSubmission(len, big[1][1]), big)], 100 * MB, 10 * MB, folder)
    assert [item.size for item in report.pickled] == report.sizes and report.sizes[0] > 3 * MB
    assert os.listdir(tmp_path) == []
    folder.mkdir(mode=0o700)
    report.pickled[0].place(folder / "x.pkl")
    report.discard()  # placed: kept
    assert payload.load(folder / "x.pkl").result() == 3 * MB


def test_an_arrays_preflight_pickles_one_file_and_explains_what_fails(
    tmp_path: Path,
) -> None:
    ns = notebook(LOCKED)
    folder = tmp_path / "jobs"
    calls = [b"a", b"b", ns["NetworkTraining"]()]  # the third argument cannot be pickled
    submissions = [
        (DelayedSubmission(len, arg), [("len", len), ("args[0]", arg)]) for arg in calls
    ]
    with pytest.raises(SerializationError, match=r"cannot pickle args\[0\]\.logger\._lock"):
        preflight(submissions, 100 * MB, 10 * MB, folder)
    big = b"w" * (2 * MB)
    submissions = [
        (DelayedSubmission(len, arg), [("len", len), ("args[0]", arg)]) for arg in (b"a", big)
    ]
    with pytest.raises(SerializationError, match=r"payload 1 of the array is 2\.0 MB"):
        preflight(submissions, 1 * MB, 10 * MB, folder)
    assert os.listdir(tmp_path) == []  # refused: nothing visible
    report = preflight(submissions, 100 * MB, 10 * MB, folder)
    assert [item.size for item in report.pickled] == report.sizes and report.sizes[1] > 2 * MB
    folder.mkdir(mode=0o700)
    for index, item in enumerate(report.pickled):
        item.place(folder / f"L1_{index}_submitted.pkl")
    report.discard()
    assert (folder / "L1_0_submitted.pkl").stat().st_nlink == 2  # one file, two names
    assert payload.load(folder / "L1_1_submitted.pkl").result() == 2 * MB
