"""The ``%%slurm`` / ``%slurm`` and ``%slurm_jobs`` magics: thin dispatch over testable parts.

``%%slurm``: parse the options (``options``, defaults from ``config``, checked by ``resolve``),
split and compile the cell (``capture``), run its body in the notebook, evaluate the last call,
pickle it once (``serialize``), submit it through the core executor (``submit``), bind the job
and display it. ``%slurm_jobs`` lists a job folder (``views.listing``). Every user mistake is a
one-line ``UsageError`` raised before anything is written to the job folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from ..backends.auto import AutoExecutor
from ..backends.ssh.connection import RemoteUnreachable
from ..backends.ssh.hello import RemoteEnvironmentError
from ..backends.ssh.listing import mirror_remote_jobs
from ..core.errors import FailedSubmissionError, JobFolderError
from ..core.helpers import DelayedSubmission
from ..core.job import Job
from ..views.listing import SHOWN, JobTable, list_jobs
from . import capture, options, serialize
from .config import SlurmConfig
from .resolve import SubmitOptions, build_executor, remote_of, resolve
from .submit import show_jobs, submit_cell

_USER_ERRORS = (
    options.OptionError,
    capture.CaptureError,
    serialize.SerializationError,
    FailedSubmissionError,
    JobFolderError,
    RemoteUnreachable,
    RemoteEnvironmentError,
)


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Turn the user's mistakes into IPython's one-line ``UsageError`` (no traceback)."""
    try:
        yield
    except _USER_ERRORS as error:
        if isinstance(error, FailedSubmissionError):
            message = str(error).strip()  # sbatch's stderr, verbatim
        else:
            message = " ".join(str(error).split())
        raise UsageError(message) from None


@magics_class
class SlurmMagics(Magics, SlurmConfig):
    """``%%slurm``, ``%slurm`` and ``%slurm_jobs``; option defaults are the config traits."""

    @line_cell_magic
    @options.add_arguments
    def slurm(self, line: str, cell: str | None = None) -> None:
        """Run the cell here except its last statement, which is submitted as a job.

        The last statement is a call, optionally bound: ``F(args)``, ``job = F(args)``; ``F``
        and the arguments are evaluated here, and ``executor.submit(F, *args, **kwargs)`` is
        made instead of calling ``F``. ``jobs = [F(x) for x in xs]`` submits one job array.
        Line form: ``%slurm [options] job = F(args)``. Without sbatch on PATH the jobs run on
        the local backend (real processes, same checkpoint and requeue behaviour). Defaults
        are configurable: ``%config SlurmMagics.partition = "gpu"``.
        """
        __tracebackhide__ = True
        shell = self.shell
        assert shell is not None
        with usage_errors():
            if cell is None:
                line, cell = options.split_statement(line)
            args = options.parse_line(self.slurm, line)
            if not cell.strip():
                raise capture.CaptureError(
                    "nothing to submit: write `%slurm [options] job = F(args)`"
                    " or put the code below `%%slurm`"
                )
            opts = resolve(args, self)
            executor = build_executor(opts)
            # Named as the jobs see it: their tracebacks show the cell's lines.
            folder = executor.executor.folder_on_nodes
            source = capture.CellSource.create(shell.transform_cell(cell), folder)
            captured = capture.parse_cell(source, flags=shell.compile.flags)
        source.register()
        capture.run_body(captured, shell.user_global_ns, shell.user_ns)
        with usage_errors():
            submissions = capture.evaluate(captured, shell.user_global_ns, shell.user_ns)
            if opts.verify_checkpoint is not None and not opts.dry_run:
                self._verify(opts, opts.verify_checkpoint, executor, captured, submissions)
                return
            outcome = submit_cell(opts, executor, captured, submissions)
        if opts.dry_run:
            print(outcome.dry_run_text)
            return
        value: Job[Any] | list[Job[Any]] = outcome.jobs if captured.array else outcome.jobs[0]
        if captured.target is not None:
            shell.user_ns[captured.target] = value
        show_jobs(value, opts.widget)

    def _verify(
        self,
        opts: SubmitOptions,
        interrupts: int,
        executor: AutoExecutor,
        cell: capture.CapturedCell,
        submissions: list[DelayedSubmission[Any]],
    ) -> None:
        from ..verify import VerificationError, verify_checkpoint  # loaded when first used

        if cell.array:
            raise options.OptionError("--verify-checkpoint checks one call, not a job array")
        with serialize.pickled_by_value(opts.by_value):
            serialize.preflight(
                [(submissions[0], cell.labels.roots(submissions[0]))],
                opts.max_payload_bytes,
                opts.warn_global_bytes,
            )
            try:
                report = verify_checkpoint(
                    submissions[0], interrupts=interrupts, executor=executor
                )
            except VerificationError as error:
                raise capture.CaptureError(str(error)) from None
        if cell.target is not None and self.shell is not None:
            self.shell.user_ns[cell.target] = report  # `report = F(args)` binds the report
        display(report)

    @line_magic
    @magic_arguments()
    @argument(
        "--folder",
        metavar="DIR",
        help="Job folder (default: SlurmMagics.folder; on a cluster reached over SSH, "
        "SlurmMagics.remote_folder).",
    )
    @argument(
        "--cluster",
        metavar="NAME",
        help="ssh://[user@]host: list a job folder there (default: SlurmMagics.remote when "
        "set); local: the job folder here.",
    )
    @argument("--state", metavar="S", help="Only jobs in these states (FAILED,TIMEOUT).")
    @argument("--name", metavar="N", help="Only jobs whose name contains N.")
    @argument("--text", metavar="T", help="Only job T (array T), or name/state/folder with T.")
    @argument(
        "--limit", metavar="N", type=int, default=SHOWN,
        help=f"Show the newest N jobs (default {SHOWN}); every job stays reachable by id.",
    )  # fmt: skip
    def slurm_jobs(self, line: str) -> JobTable:
        """List every job of the job folder (live or finished, any kernel) and re-attach them.

        Returns a mapping of job id to live ``Job`` (also bound to ``slurm_jobs``):
        ``jobs = %slurm_jobs`` then ``jobs["L3"].result()``; an id found in two subfolders is
        named with its subfolder, ``jobs["k1/L1"]``. The table counts the jobs in each state
        and shows the newest ``--limit``; ``jobs.select(state="FAILED")`` narrows it down. On a
        cluster reached over SSH (``--cluster ssh://login-node``, or ``SlurmMagics.remote``)
        the folder there is listed, through the same connection.
        """
        with usage_errors():
            args = options.parse_line(self.slurm_jobs, line)
            if args.limit < 0:
                raise UsageError(f"--limit must be 0 or more, not {args.limit}")
            requested = options.check_cluster_option(args.cluster or self.cluster)
            remote = remote_of(requested, self.remote)
            if remote:
                folder = args.folder or self.remote_folder
                where = mirror_remote_jobs(remote, folder, python=self.remote_python)
            else:
                where = Path(args.folder or self.folder)
            table = list_jobs(
                where, state=args.state, name=args.name, text=args.text, limit=args.limit
            )
        if self.shell is not None:
            self.shell.user_ns["slurm_jobs"] = table
        return table


_MAGIC_NAMES = (("line", "slurm"), ("cell", "slurm"), ("line", "slurm_jobs"))


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext jupyter_slurm_ckpt``)."""
    ipython.register_magics(SlurmMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and their config object (``%unload_ext jupyter_slurm_ckpt``)."""
    manager = ipython.magics_manager
    instance = manager.registry.pop(SlurmMagics.__name__, None)
    for kind, name in _MAGIC_NAMES:
        manager.magics[kind].pop(name, None)
    if instance is not None and instance in ipython.configurables:
        ipython.configurables.remove(instance)
