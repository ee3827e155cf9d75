"""The ``%%slurm`` / ``%slurm`` and ``%slurm_jobs`` magics: thin dispatch over testable parts.

``%%slurm``: parse the options (``options``), split and compile the cell (``capture``), run its
body in the notebook, evaluate the last call, pickle it once (``serialize``), submit it through
the core executor, bind the job and display it. Every user mistake is a one-line ``UsageError``
raised before anything is written to the job folder.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from ..backends.auto import AutoExecutor
from ..core.errors import FailedSubmissionError, JobFolderError
from ..core.files import check_folder_is_safe
from ..core.helpers import DelayedSubmission
from ..core.info import callable_name
from ..core.job import Job
from ..core.paths import JobPaths, template_root
from ..core.payload import format_size
from ..views.html import escape, render_table_html
from ..views.snapshot import JobStatus, collect_status
from ..views.text import render_table_text
from . import capture, options, serialize
from .options import SlurmConfig, SubmitOptions

_USER_ERRORS = (
    options.OptionError,
    capture.CaptureError,
    serialize.SerializationError,
    FailedSubmissionError,
    JobFolderError,
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


@dataclass
class Submitted:
    """What one ``%%slurm`` run produced: the jobs, or only the report of a dry run."""

    jobs: list[Job[Any]]
    sizes: list[int]
    dry_run_text: str = ""


def submit_cell(
    opts: SubmitOptions,
    executor: AutoExecutor,
    cell: capture.CapturedCell,
    submissions: list[DelayedSubmission[Any]],
) -> Submitted:
    """Preflight the payloads and submit them (or describe them, for ``--dry-run``).

    The preflight pickles each payload once, into a file of the job folder that has no name
    yet, and the executor submits those files as they are: a payload is never pickled twice.
    """
    with serialize.pickled_by_value(opts.by_value):
        report = serialize.preflight(
            [(s, cell.labels.roots(s)) for s in submissions],
            opts.max_payload_bytes,
            opts.warn_global_bytes,
            folder=None if opts.dry_run else template_root(executor.folder),
        )
    try:
        for warning in report.warnings:
            print(warning, file=sys.stderr)
        name = callable_name(submissions[0].function)
        try:
            options.set_default_name(executor, name)
        except ValueError as error:
            raise options.OptionError(str(error)) from None
        if opts.dry_run:
            return Submitted([], report.sizes, dry_run_text(opts, executor, cell, report.sizes))
        undo = cell.source.write()
        try:
            jobs = executor.submit_pickled(report.pickled, array=cell.array)
        except BaseException:
            undo()
            raise
    finally:
        report.discard()
    return Submitted(jobs, report.sizes)


def dry_run_text(
    opts: SubmitOptions, executor: AutoExecutor, cell: capture.CapturedCell, sizes: list[int]
) -> str:
    """What ``--dry-run`` shows: backend, folder, parameters, payload size (and sbatch script)."""
    how = "" if opts.requested_cluster == opts.cluster else f" (--cluster {opts.requested_cluster})"
    count = f"a job array of {len(sizes)} jobs" if cell.array else "1 job"
    lines = [
        "dry run: nothing submitted",
        f"backend: {opts.cluster}{how}",
        f"folder: {executor.folder}",
        f"would submit: {count}" + (f", bound to {cell.target!r}" if cell.target else ""),
        f"payload: {format_size(max(sizes))}"
        + (f" (largest), {format_size(sum(sizes))} in all" if len(sizes) > 1 else ""),
        f"max_num_timeout: {opts.max_num_timeout}",
        "parameters: "
        + ", ".join(f"{key}={value!r}" for key, value in sorted(executor.parameters.items())),
    ]
    if opts.ignored:
        lines.append(f"ignored by the {opts.cluster} backend: {', '.join(opts.ignored)}")
    if opts.by_value:
        lines.append(f"pickled by value: {', '.join(opts.by_value)}")
    if opts.cluster == "slurm":
        render = getattr(executor.executor, "sbatch_script", None)
        if callable(render):
            lines += ["sbatch script:", str(render(len(sizes) if cell.array else 0))]
        else:
            lines.append("(this Slurm backend cannot render its sbatch script: parameters shown)")
    return "\n".join(lines)


def show_jobs(value: Job[Any] | list[Job[Any]], widget: bool) -> None:
    """Display the live job widget, or the job's text form without the widget module."""
    if widget:
        try:
            from ..views.widget import display_job
        except ImportError:  # ipywidgets is not installed
            pass
        else:
            display_job(value)
            return
    # Plain text only: a Job's rich display would be the widget again.
    display({"text/plain": repr(value)}, raw=True)


# -- %slurm_jobs -----------------------------------------------------------------------------


class JobTable(Mapping[str, Job[Any]]):
    """Every job of a job folder, re-attached: ``table["L3"]`` is a live ``Job``.

    Shows as a table (state, elapsed time, requeues, outcome: the widget's own rendering) in a
    notebook and in a terminal. A job whose files cannot be read is listed with the reason
    instead of breaking the listing.
    """

    def __init__(
        self,
        folder: Path,
        jobs: dict[str, Job[Any]],
        statuses: list[JobStatus],
        unreadable: dict[str, str],
    ) -> None:
        self.folder = folder
        self.statuses = statuses
        self.unreadable = unreadable
        self._jobs = jobs

    def __getitem__(self, job_id: object) -> Job[Any]:
        try:
            return self._jobs[str(job_id)]
        except KeyError:
            known = ", ".join(self._jobs) or "none"
            raise KeyError(f"no job {job_id!r} in {self.folder} (jobs: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __repr__(self) -> str:
        if not self.statuses and not self.unreadable:
            return f"no jobs in {self.folder}"
        lines = [f"job folder {self.folder}", render_table_text(self.statuses)]
        lines += [f"  {job_id:<10} unreadable: {why}" for job_id, why in self.unreadable.items()]
        lines += [f"  {job_id:<10} problem: {why}" for job_id, why in self._problems().items()]
        return "\n".join(lines)

    def _problems(self) -> dict[str, str]:
        """Jobs that are listed but whose files are partly damaged (e.g. events lines)."""
        return {s.job_id: s.problem for s in self.statuses if s.problem}

    def _repr_html_(self) -> str:
        folder = escape(str(self.folder))
        if not self.statuses and not self.unreadable:
            return f"<p>no jobs in <code>{folder}</code></p>"
        broken = "".join(
            f"<li><code>{escape(job_id)}</code> {kind}: {escape(why)}</li>"
            for kind, reasons in (("unreadable", self.unreadable), ("problem", self._problems()))
            for job_id, why in reasons.items()
        )
        return (
            f"<div>job folder <code>{folder}</code></div>"
            + render_table_html(self.statuses)
            + (f"<ul>{broken}</ul>" if broken else "")
        )


def list_jobs(folder: str | Path) -> JobTable:
    """Re-attach every job of ``folder`` (and of its ``%j``-style subfolders).

    Raises
    ------
    JobFolderError
        If ``folder`` belongs to another user or others can write to it (its pickles could be
        anyone's code); a ``%j`` subfolder like that is listed as unreadable.
    """
    folder = Path(folder).expanduser().absolute()
    if folder.is_dir():
        check_folder_is_safe(folder)
    marker = f"*{JobPaths.INFO_SUFFIX}"
    found = sorted(folder.glob(marker)) + sorted(folder.glob(f"*/{marker}"))
    attached: list[tuple[float, Job[Any], JobStatus]] = []
    unreadable: dict[str, str] = {}
    seen: set[str] = set()
    for info_path in found:
        job_id = JobPaths.job_id_of(info_path.name)
        if job_id is None or job_id in seen:
            continue
        seen.add(job_id)
        try:
            job: Job[Any] = Job(info_path.parent, job_id)
            snapshot = collect_status(job, details=False)
            attached.append((job.info.submitted_at, job, snapshot))
        except Exception as error:  # one broken job must not hide the others
            unreadable[job_id] = f"{type(error).__name__}: {' '.join(str(error).split())}"
    attached.sort(key=lambda item: (item[0], item[1].job_id))
    jobs = {job.job_id: job for _, job, _ in attached}
    return JobTable(folder, jobs, [snapshot for _, _, snapshot in attached], unreadable)


# -- the magics ------------------------------------------------------------------------------


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
            opts = options.resolve(args, self)
            executor = options.build_executor(opts)
            source = capture.CellSource.create(shell.transform_cell(cell), opts.folder)
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
    @argument("--folder", metavar="DIR", help="Job folder (default: SlurmMagics.folder).")
    def slurm_jobs(self, line: str) -> JobTable:
        """List every job of the job folder (live or finished, any kernel) and re-attach them.

        Returns a mapping of job id to live ``Job`` (also bound to ``slurm_jobs``):
        ``jobs = %slurm_jobs`` then ``jobs["L3"].result()``.
        """
        with usage_errors():
            args = options.parse_line(self.slurm_jobs, line)
            table = list_jobs(Path(args.folder or self.folder))
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
