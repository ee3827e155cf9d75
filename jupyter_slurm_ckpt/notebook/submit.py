"""Submitting a captured cell: preflight its payloads (pickled once), submit them, display the
jobs; or, for ``--dry-run``, describe what would be submitted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from IPython.display import display

from ..backends.auto import AutoExecutor
from ..backends.slurm import SlurmExecutor
from ..backends.ssh import SshExecutor
from ..core.helpers import DelayedSubmission
from ..core.info import callable_name
from ..core.job import Job
from ..core.paths import template_root
from ..core.payload import format_size
from . import capture, serialize
from .options import OptionError
from .resolve import SubmitOptions, set_default_name


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
            set_default_name(executor, name)
        except ValueError as error:
            raise OptionError(str(error)) from None
        if opts.dry_run:
            return Submitted([], report.sizes, dry_run_text(opts, executor, cell, report.sizes))
        undo = _write_source(executor, cell.source)
        try:
            jobs = executor.submit_pickled(report.pickled, array=cell.array)
        except BaseException:
            undo()
            raise
    finally:
        report.discard()
    return Submitted(jobs, report.sizes)


def _write_source(executor: AutoExecutor, source: capture.CellSource) -> Callable[[], None]:
    """Write the cell's file where the jobs read it (on a cluster reached over SSH: with the
    submission); returns an undo for a failed submission."""
    if isinstance(executor.executor, SshExecutor):
        executor.executor.attach_source(source.filename, source.text)
        return lambda: None
    return source.write()


def dry_run_text(
    opts: SubmitOptions, executor: AutoExecutor, cell: capture.CapturedCell, sizes: list[int]
) -> str:
    """What ``--dry-run`` shows: backend, folder, parameters, payload size (and sbatch script)."""
    how = "" if opts.requested_cluster == opts.cluster else f" (--cluster {opts.requested_cluster})"
    count = f"a job array of {len(sizes)} jobs" if cell.array else "1 job"
    lines = [
        "dry run: nothing submitted",
        f"backend: {opts.cluster}{how}",
        f"folder: {_folder_text(opts, executor)}",
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
    if isinstance(executor.executor, SlurmExecutor):
        script = executor.executor.sbatch_script(len(sizes) if cell.array else 0)
        lines += ["sbatch script:", script]
    return "\n".join(lines)


def _folder_text(opts: SubmitOptions, executor: AutoExecutor) -> str:
    if opts.remote:
        return f"{executor.executor.folder_on_nodes} on {opts.remote} (copied to {executor.folder})"
    return str(executor.folder)


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
