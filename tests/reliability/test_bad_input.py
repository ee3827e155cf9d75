"""Bad input corpus: malformed ``%%slurm`` cells through a real IPython ``InteractiveShell``.

Every case must end in one line of ``UsageError`` and change nothing on disk: the test takes a
snapshot of everything under the notebook's folder (the job folder holding an earlier job, its
``cells/``, the local job counter, the folders of the folder cases) before the cell and compares
it after (path, type, mode, size and modification time of every file *and* folder, so a file
created then removed is caught too). ``sbatch``, ``scontrol``, ``squeue`` and ``sacct`` are
tripwires on ``PATH`` that would leave a file behind: the ``--cluster slurm`` cases prove that
the refusal comes before any backend is touched.

The ``--sbatch`` policy (documented in ``jupyter_slurm_ckpt/options.py``): control characters
(newlines first) and ``#SBATCH`` are always refused, and so are ``;``, ``$`` and backquotes,
which no sbatch option needs; Slurm's own syntax (``&``, ``|``, ``[]``, quotes...) is accepted,
and :func:`test_accepted_sbatch_syntax_reaches_sbatch_as_inert_argv_items` proves it inert.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from support import address_space_limit

BODY = "ran_body = True\ndef f(*args, **kwargs):\n    return 1\n"
GIB = 1024**3
TRIPWIRES = ("sbatch", "scontrol", "squeue", "sacct")


@dataclass(frozen=True)
class Case:
    """One malformed invocation: the cell, and the start of the one-line message it must give."""

    name: str
    cell: str
    message: str
    prepare: Callable[[Path, Any], None] | None = None
    refused_before_body: bool = False  # the option line alone is refused


def options_case(name: str, options: str, message: str) -> Case:
    """A case whose option line is wrong; the (valid) body must not even run."""
    cell = f"%%slurm --cluster local {options}\n{BODY}job = f()\n"
    return Case(name, cell, message, refused_before_body=True)


def cell_case(name: str, body: str, message: str, options: str = "") -> Case:
    """A case whose cell is wrong (options are fine)."""
    return Case(name, f"%%slurm --cluster local {options}\n{body}", message)


def _variable(name: str, value: str) -> Callable[[Path, Any], None]:
    def prepare(root: Path, shell: Any) -> None:
        shell.ns[name] = value  # `{name}` in the option line is expanded by IPython

    return prepare


def _file(root: Path, shell: Any) -> None:
    (root / "afile").write_text("not a folder\n")


def _open_folder(root: Path, shell: Any) -> None:
    folder = root / "shared"
    folder.mkdir()
    folder.chmod(0o777)  # anyone can plant a pickle here


def _sbatch_config(root: Path, shell: Any) -> None:
    shell.run('%config SlurmMagics.sbatch = {"comment": "x\\n#SBATCH --uid=0"}')


OPTION_CASES = [
    options_case("unknown flag", "--gpu 1", "unrecognized arguments: --gpu 1"),
    options_case("abbreviated flag", "--time 5", "unrecognized arguments: --time 5"),
    options_case("single-dash flag", "-timeout 5", "unrecognized arguments: -timeout 5"),
    options_case("stray word", "--timeout 5 now", "unrecognized arguments: now"),
    options_case(
        "repeated flag", "--timeout 5 --timeout 10", "argument --timeout: given more than once"
    ),
    options_case("repeated with =", "--name a --name=b", "argument --name: given more than once"),
    options_case(
        "repeated switch", "--no-widget --no-widget", "argument --no-widget: given more than once"
    ),
    options_case(
        "repeated cluster", "--cluster debug", "argument --cluster: given more than once"
    ),
    options_case("negative timeout", "--timeout -5", "argument --timeout: must be > 0, not -5"),
    options_case(
        "negative cpus", "--cpus-per-task -2", "argument --cpus-per-task: must be >= 1, not -2"
    ),
    options_case("negative memory", "--mem-gb -1", "argument --mem-gb: must be > 0, not -1"),
    options_case(
        "negative timeouts budget",
        "--max-num-timeout -1",
        "argument --max-num-timeout: must be >= 0, not -1",
    ),
    options_case(
        "negative signal delay",
        "--signal-delay-s -3",
        "argument --signal-delay-s: must be >= 0, not -3",
    ),
    options_case("zero nodes", "--nodes 0", "argument --nodes: must be >= 1, not 0"),
    options_case(
        "huge timeout", "--timeout 1e300", "argument --timeout: must be <= 525600, not 1e300"
    ),
    options_case(
        "huge nodes",
        "--nodes 99999999999",
        "argument --nodes: must be <= 2147483647, not 99999999999",
    ),
    options_case(
        "huge gpus",
        "--gpus-per-node 4294967296",
        "argument --gpus-per-node: must be <= 2147483647",
    ),
    options_case(
        "huge signal delay",
        "--signal-delay-s 100000",
        "argument --signal-delay-s: must be <= 65535, not 100000",
    ),
    options_case(
        "fork bomb on the local backend",
        "--nodes 1000 --tasks-per-node 1000",
        "nodes * tasks_per_node = 1000000 local processes per job, over the local backend's "
        "limit of 256",
    ),
    options_case(
        "infinite timeout", "--timeout inf", "argument --timeout: expected a finite number"
    ),
    options_case("nan memory", "--mem-gb nan", "argument --mem-gb: expected a finite number"),
    options_case(
        "non-numeric", "--timeout abc", "argument --timeout: expected a number, not 'abc'"
    ),
    options_case(
        "non-integer", "--nodes 2.5", "argument --nodes: expected a whole number, not '2.5'"
    ),
    options_case(
        "unit suffix", "--mem-gb 4G", "argument --mem-gb: expected a number, not '4G'"
    ),
    options_case(
        "empty number",
        "--gpus-per-node ''",
        "argument --gpus-per-node: expected a whole number, not ''",
    ),
    options_case("missing value", "--timeout", "argument --timeout: expected one argument"),
    options_case("unclosed quote", "--name 'oops", "cannot read the options: No closing"),
    options_case("bad module name", "--by-value 'os;rm'", "argument --by-value: 'os;rm' is not"),
    options_case("empty folder", "--folder ''", "argument --folder: expected a non-empty"),
]

CELL_CASES = [
    Case("empty cell", "%%slurm --cluster local\n", "%%slurm is a cell magic, but the cell"),
    Case("blank cell", "%%slurm --cluster local\n  \n\n", "nothing to submit"),
    Case("empty line form", "%slurm --cluster local --timeout 5", "nothing to submit"),
    cell_case("comment-only cell", "# nothing here\n", "the cell is empty"),
    cell_case("syntax error", "def g(:\n    pass\n", "syntax error in the cell, line 1"),
    cell_case(
        "last statement an assignment",
        f"{BODY}x = 1\n",
        "the last statement of the cell (line 4) must be the call to submit",
    ),
    cell_case(
        "last statement a definition", "def g():\n    return 1\n", "the last statement of the"
    ),
    cell_case("last statement an expression", f"{BODY}f() + 1\n", "the last statement of the"),
    cell_case(
        "two targets", f"{BODY}a, b = f()\n", "the last statement (line 4) must bind the job"
    ),
    cell_case(
        "empty comprehension",
        f"{BODY}jobs = [f(x) for x in []]\n",
        "the list comprehension of line 4 produced no call",
    ),
    cell_case("not callable", "x = 3\njob = x()\n", "x is not callable (it is int)"),
    cell_case(
        "lambda capturing a lock",
        "import threading\n"
        "def make():\n"
        "    lock = threading.Lock()\n"
        "    return lambda: lock.locked()\n"
        "g = make()\n"
        "job = g()\n",
        "cannot pickle lock (a variable captured by make.<locals>.<lambda>): TypeError",
    ),
    cell_case(
        "lambda using a global lock",
        "import threading\nlock = threading.Lock()\ng = lambda: lock.locked()\njob = g()\n",
        "cannot pickle lock (a notebook global used by <lambda>): TypeError",
    ),
    cell_case(
        "generator function",
        "def count():\n    yield 1\njob = count()\n",
        "count is a generator function",
    ),
    cell_case(
        "async function",
        "async def fetch():\n    return 1\njob = fetch()\n",
        "fetch is a coroutine function (async def)",
    ),
    cell_case(
        "generator argument",
        f"{BODY}job = f(x * x for x in range(3))\n",
        "cannot pickle (x * x for x in range(3)): TypeError: cannot pickle 'generator' object",
    ),
    cell_case(
        "unpicklable keyword argument",
        f"import threading\n{BODY}job = f(guard=threading.Lock())\n",
        "cannot pickle threading.Lock(): TypeError: cannot pickle '_thread.lock' object",
    ),
]

FOLDER_CASES = [
    Case(
        "folder is a file",
        f"%%slurm --cluster local --folder afile\n{BODY}job = f()\n",
        "job folder {root}/afile exists and is not a directory",
        prepare=_file,
    ),
    Case(
        "folder below a file",
        f"%%slurm --cluster local --folder afile/jobs\n{BODY}job = f()\n",
        "cannot create job folder {root}/afile/jobs: Not a directory",
        prepare=_file,
    ),
    Case(
        "folder writable by others",
        f"%%slurm --cluster local --folder shared\n{BODY}job = f()\n",
        "job folder {root}/shared is writable by others (mode 777)",
        prepare=_open_folder,
    ),
]

# Injection attempts through the options that become sbatch options; each is run with
# --cluster local and --cluster slurm: refused while parsing, whatever the backend.
SBATCH = "argument --sbatch: "
CONTROL = "expected a non-empty single line without control characters"
SHELL = "not allowed (no sbatch option needs shell syntax)"
INJECTIONS = [
    ("directive after \\n", '--sbatch "job-name=x\\n#SBATCH --uid=0"', f"{SBATCH}#SBATCH is not"),
    ("directive alone", "--sbatch 'comment=#SBATCH --uid=0'", f"{SBATCH}#SBATCH is not"),
    ("real newline", '--sbatch "job-name={value}"', SBATCH + CONTROL),
    ("carriage return", "--sbatch 'comment={value}'", SBATCH + CONTROL),
    ("escape sequence", "--sbatch 'comment={value}'", SBATCH + CONTROL),
    ("tab", "--sbatch 'comment={value}'", SBATCH + CONTROL),
    ("NUL", "--sbatch 'comment={value}'", SBATCH + CONTROL),
    ("semicolon", "--sbatch 'comment=a; rm -rf ~'", f"{SBATCH}; {SHELL}"),
    ("command substitution", "--sbatch 'comment=$(touch pwned)'", f"{SBATCH}$ {SHELL}"),
    ("backquotes", "--sbatch 'comment=`touch pwned`'", f"{SBATCH}` {SHELL}"),
    ("parameter expansion", "--sbatch 'comment=${IFS}x'", f"{SBATCH}$ {SHELL}"),
    ("in the job name", "--name 'x; reboot'", f"argument --name: ; {SHELL}"),
    ("in the partition", "--partition 'gpu$(id)'", f"argument --partition: $ {SHELL}"),
    ("key with a space", "--sbatch 'uid 0=1'", f"{SBATCH}expected KEY=VALUE"),
    ("directive as key", "--sbatch '#SBATCH=1'", f"{SBATCH}expected KEY=VALUE"),
    ("setup with a newline", "--setup 'ls{value}'", f"argument --setup: {CONTROL}"),
]
INJECTION_VALUES = {
    "real newline": "x\n#SBATCH --uid=0",
    "carriage return": "a\rb",
    "escape sequence": "\x1b[2J",
    "tab": "a\tb",
    "NUL": "a\0b",
    "setup with a newline": "\nrm -rf ~",
}


def injection_cases() -> list[Case]:
    cases = []
    for cluster in ("local", "slurm"):
        for name, options, message in INJECTIONS:
            value = INJECTION_VALUES.get(name)
            cases.append(
                Case(
                    f"{name} ({cluster})",
                    f"%%slurm --cluster {cluster} {options}\n{BODY}job = f()\n",
                    message,
                    prepare=_variable("value", value) if value is not None else None,
                    refused_before_body=True,
                )
            )
        cases.append(
            Case(
                f"injection through the config ({cluster})",
                f"%%slurm --cluster {cluster}\n{BODY}job = f()\n",
                f"SlurmMagics.sbatch: {CONTROL}",
                prepare=_sbatch_config,
                refused_before_body=True,
            )
        )
    return cases


CASES = OPTION_CASES + CELL_CASES + FOLDER_CASES + injection_cases()


# -- the check ---------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every file and folder below ``root``: (type, mode, size, mtime) by relative path."""
    found = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder, name)
            info = path.lstat()
            found[str(path.relative_to(root))] = (
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                info.st_size,
                info.st_mtime_ns,
            )
    return found


@pytest.fixture
def notebook(ipython: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The shell, with an earlier job in the job folder and Slurm's commands as tripwires."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in TRIPWIRES:
        script = bin_dir / command
        script.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(tmp_path))}/{command}-was-called\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    ipython.run(f"%%slurm --cluster debug --no-widget\n{BODY}earlier = f()\n")
    assert ipython.ns["earlier"].result() == 1
    del ipython.ns["ran_body"]
    yield ipython


def refused(notebook: Any, root: Path, case: Case) -> str:
    """Run the case's cell; check the one-line refusal and that nothing changed on disk."""
    if case.prepare is not None:
        case.prepare(root, notebook)
    before = snapshot(root)
    assert before, "the earlier job's files are there"
    with pytest.raises(UsageError) as caught:
        notebook.run(case.cell)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(case.message.format(root=root)), message
    assert snapshot(root) == before, "the refused cell changed files"
    assert not [name for name in ("job", "jobs") if name in notebook.ns]
    if case.refused_before_body:
        assert "ran_body" not in notebook.ns, "the body ran before the option line was refused"
    return message


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_refused_in_one_line_and_nothing_written(
    notebook: Any, tmp_path: Path, case: Case
) -> None:
    refused(notebook, tmp_path, case)


def test_the_corpus_is_big_enough() -> None:
    # Plus the 2 GB payload and the two read-only folders below.
    assert len(CASES) >= 30 and len({case.name for case in CASES}) == len(CASES)


# -- a 2 GB payload, refused without a 2 GB copy -------------------------------------------------


def test_a_2_gb_payload_is_refused_without_being_copied(notebook: Any, tmp_path: Path) -> None:
    # bytes(n) is calloc'ed: its 2 GiB are mapped, not resident, until something copies them.
    # With the address space capped at 2 GiB + 768 MiB above what the process maps now, a
    # preflight that built the pickle (or any copy of the payload) would fail with MemoryError.
    with address_space_limit(2 * GIB + 768 * 1024**2):
        try:
            probe = bytes(2 * GIB)
        except MemoryError:
            pytest.skip("this machine will not map 2 GiB here (memory overcommit disabled?)")
        del probe
        case = cell_case(
            "2 GB payload",
            f"{BODY}weights = bytes(2 * 1024**3)\njob = f(weights)\n",
            "the payload is 2.0 GB, over the limit of 100.0 MB (SlurmMagics.max_payload_mb); "
            "biggest parts: weights (2.0 GB)",
        )
        try:
            refused(notebook, tmp_path, case)
        finally:
            notebook.ns.pop("weights", None)


# -- a folder we cannot write to ------------------------------------------------------------------


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[str]:
    """An existing, private, empty folder that cannot be written to, even by root.

    As root, permissions do not stop us: the folder is a read-only bind mount of itself (what a
    read-only shared filesystem looks like), else made immutable with ``chattr +i``; as another
    user, ``chmod 500`` is enough. Yields how it was done.
    """
    path.mkdir(mode=0o700)
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield "chmod 500"
        finally:
            path.chmod(0o700)
        return
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True, check=False
    )
    if mounted.returncode == 0:
        try:
            yield "read-only bind mount"
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if immutable.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root: {mounted.stderr!r}")
    try:
        yield "chattr +i"
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("readonly", "job folder {root}/readonly is not writable; choose another with --folder"),
        ("readonly/jobs", "cannot create job folder {root}/readonly/jobs: "),
    ],
)
def test_a_folder_that_cannot_be_written(
    notebook: Any, tmp_path: Path, folder: str, message: str
) -> None:
    with read_only_folder(tmp_path / "readonly"):
        cell = f"%%slurm --cluster local --folder {folder}\n{BODY}job = f()\n"
        refused(notebook, tmp_path, Case(f"read-only {folder}", cell, message))


# -- what is accepted is inert ------------------------------------------------------------------


ACCEPTED = {
    "constraint": "a100&ib|[rack1|rack2]",
    "comment": "it's \"quoted\" * ? ! & | > < ( ) {braces} spaces",
    "dependency": "afterok:1?afterany:2",
}


def test_accepted_sbatch_syntax_reaches_sbatch_as_inert_argv_items(
    notebook: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No Slurm is needed: the dry run renders the submission; the tripwire "sbatch" on PATH
    # satisfies --cluster slurm's check and would leave a file if anything called it.
    options = " ".join(f"--sbatch {shlex.quote(f'{k}={v}')}" for k, v in ACCEPTED.items())
    before = snapshot(tmp_path)
    capsys.readouterr()
    notebook.run(f"%%slurm --cluster slurm --dry-run --name 'a & b' {options}\n{BODY}f()\n")
    out = capsys.readouterr().out
    assert snapshot(tmp_path) == before
    script = out[out.index("#!/bin/bash") :]
    # The values appear on one line only: the comment that shows sbatch's command line.
    lines = [line for line in script.splitlines() if "rack1" in line or "a & b" in line]
    assert len(lines) == 1 and lines[0].startswith("#   sbatch "), lines
    argv = shlex.split(lines[0][len("#   sbatch ") :])
    for key, value in ACCEPTED.items():
        assert f"--{key}={value}" in argv, argv  # one argv item each, verbatim
    assert "--job-name=a & b" in argv
    # Outside that comment the script holds none of the user's values: bash never reads them.
    code = "\n".join(line for line in script.splitlines() if not line.startswith("#"))
    assert all(value not in code for value in ACCEPTED.values())
    checked = subprocess.run(["bash", "-n"], input=script, text=True, check=False)
    assert checked.returncode == 0


def test_tripwires_work(tmp_path: Path, notebook: Any) -> None:
    # The tripwires do leave a file when called: their silence above means something.
    assert shutil.which("sbatch") == str(tmp_path / "bin" / "sbatch")
    subprocess.run(["sbatch"], check=True)
    assert (tmp_path / "sbatch-was-called").exists()


@pytest.mark.slurm
def test_accepted_sbatch_values_reach_slurm_verbatim(ipython: Any) -> None:
    """On a real cluster: Slurm records the accepted values exactly as typed (a shell in
    between would have cut the comment at ``&`` or ``|``), and the job runs."""
    comment = ACCEPTED["comment"]
    ipython.run(
        f"%%slurm --cluster slurm --no-widget --timeout 2 --name 'a & b | c' "
        f"--sbatch {shlex.quote('comment=' + comment)}\n{BODY}job = f()\n"
    )
    job = ipython.ns["job"]
    shown = subprocess.run(
        ["scontrol", "show", "job", job.job_id], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert shown[0].split("JobName=", 1)[1] == "a & b | c"
    comments = [line.strip()[len("Comment=") :] for line in shown if "Comment=" in line]
    assert comments == [comment]
    assert job.result(timeout=300) == 1
