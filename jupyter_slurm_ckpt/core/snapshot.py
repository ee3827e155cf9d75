"""``RsyncSnapshot``: freeze the code a job runs, by copying the git working tree aside.

Inside ``with RsyncSnapshot(folder):`` the working directory is a copy of the repository's
tracked files (as they are on disk, uncommitted edits included) made with ``rsync``; jobs
submitted there start in that copy and import its modules first (their working directory leads
``sys.path``), so editing the repository afterwards does not change a queued or requeued job.
A new snapshot folder starts as a shallow clone without checkout (only the copied files are
there), so that it is a git repository too: a job can log the commit it runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

_GITLINK_MODE = "160000"  # a submodule's entry in the parent's index


class RsyncSnapshot:
    """Copy the git repository's tracked files to ``snapshot_dir`` and work there (a context
    manager; submitit's ``helpers.RsyncSnapshot``).

    Parameters
    ----------
    snapshot_dir
        Where the copy goes (created if needed; an existing copy is updated in place).
    root_dir
        The repository (default: the one holding the current directory).
    with_submodules
        Also copy the tracked files of submodules.
    exclude
        rsync patterns of files not to copy (``["data/*", "*.ckpt"]``).
    include
        Files to copy although git does not track them (relative to ``root_dir``: build
        products, ``.so`` files...).
    """

    def __init__(
        self,
        snapshot_dir: str | Path,
        root_dir: str | Path | None = None,
        with_submodules: bool = False,
        exclude: Sequence[str] = (),
        include: Sequence[str] = (),
    ) -> None:
        self.available(throw=True)
        self.snapshot_dir = Path(snapshot_dir).expanduser().absolute()
        self.root_dir = Path(root_dir).absolute() if root_dir else _repository_root(Path.cwd())
        self.with_submodules = with_submodules
        self.exclude = list(exclude)
        self.include = list(include)
        self.original_dir = Path.cwd()

    @staticmethod
    def available(throw: bool = False) -> bool:
        """Whether ``rsync`` and ``git`` are installed (``throw``: raise when not)."""
        missing = [tool for tool in ("rsync", "git") if shutil.which(tool) is None]
        if missing and throw:
            raise RuntimeError(
                f"RsyncSnapshot needs {' and '.join(missing)} on PATH (e.g. apt-get install "
                f"{' '.join(missing)})"
            )
        return not missing

    def files(self) -> list[str]:
        """The files the snapshot copies, relative to ``root_dir``."""
        command = ["git", "-C", str(self.root_dir), "ls-files", "-z", "--stage"]
        if self.with_submodules:
            command.append("--recurse-submodules")
        listing = _run(command).stdout
        files = []
        for entry in listing.split("\0"):
            info, _, name = entry.partition("\t")
            if name and not info.startswith(_GITLINK_MODE):
                files.append(name)
        return files + self.include

    def __enter__(self) -> RsyncSnapshot:
        self.original_dir = Path.cwd()
        if not self.snapshot_dir.exists():
            self.snapshot_dir.parent.mkdir(parents=True, exist_ok=True)
            _run(["git", "clone", "--quiet", "--no-checkout", "--depth=2",
                  self.root_dir.as_uri(), str(self.snapshot_dir)])  # fmt: skip
        excludes = [f"--exclude={pattern}" for pattern in self.exclude]
        # --checksum: a file edited within the second of an earlier copy has the same size and
        # mtime, and rsync's quick check would skip it.
        _run(
            ["rsync", "-a", "--checksum", "--from0", "--files-from=-", "--ignore-missing-args",
             *excludes, f"{self.root_dir}/", f"{self.snapshot_dir}/"],
            stdin="\0".join(self.files()),
        )  # fmt: skip
        os.chdir(self.snapshot_dir)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        os.chdir(self.original_dir)


def _repository_root(folder: Path) -> Path:
    done = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"RsyncSnapshot copies a git repository's tracked files, and {folder} is in none: "
            "pass root_dir=..."
        )
    return Path(done.stdout.strip())


def _run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr.strip()}")
    return done
