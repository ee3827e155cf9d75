"""The checkpoint verification report: plain data, and its text, HTML and widget renderings.

:func:`jupyter_slurm_ckpt.verify.verify_checkpoint` fills a :class:`VerificationReport`; this
module only words it. Imports neither IPython nor ipywidgets until a widget is asked for.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from ..core.payload import format_size
from ..views.display import in_kernel
from ..views.html import escape
from ..views.words import plural, truncate
from .plan import PlannedInterrupt

_TABLE_STYLE = "border-collapse:collapse;font-size:12px;line-height:1.4;margin:4px 0"
_CELL_STYLE = "padding:1px 12px 1px 0;text-align:left;vertical-align:top;border:none"
_PASS_COLOR = "#2e7d32"
_FAIL_COLOR = "#c62828"
_WARN_COLOR = "#e65100"


@dataclass
class InterruptRecord:
    """What happened at one interrupt, read back from the job's events."""

    planned: PlannedInterrupt | None  # None: a signal the verifier did not send (a time limit)
    applied: bool = True
    note: str = ""
    run: int = 0  # the run it interrupted (0 for the first)
    after_s: float | None = None  # seconds into that run
    reason: str | None = None  # as recorded by the job
    checkpoint_s: float | None = None
    checkpoint_bytes: int | None = None  # the pickled DelayedSubmission checkpoint() returned
    files_bytes: int | None = None  # files in the run's working directory after it
    requeued: bool = False
    not_requeued: str | None = None
    next_run: int | None = None
    requeue_gap_s: float | None = None  # from the requeue to the start of the next run
    progress_before: dict[str, Any] | None = None  # last report_progress() before the signal
    resumed_at: dict[str, Any] | None = None  # first report_progress() of the next run
    budget: str | None = None  # the checkpoint budget warning, if any


@dataclass
class RunOutcome:
    """One job of the verification: the reference, the interrupted run or a bisection step."""

    label: str
    job_id: str
    workdir: str
    state: str
    value: Any = None
    error: str | None = None  # the failure (remote traceback or reason), when no result
    elapsed_s: float | None = None  # from its first start to its end
    interrupts: list[InterruptRecord] = field(default_factory=list)
    equal: bool | None = None  # compared with the reference (None for the reference)
    difference: str | None = None
    budget: list[str] = field(default_factory=list)  # checkpoint budget warnings

    @property
    def ok(self) -> bool:
        """Whether the job produced a result."""
        return self.error is None

    @property
    def applied(self) -> int:
        """How many of the planned interrupts were sent."""
        return sum(1 for record in self.interrupts if record.planned and record.applied)


@dataclass
class VerificationReport:
    """The outcome of :func:`jupyter_slurm_ckpt.verify_checkpoint`.

    ``report.ok`` is the verdict; ``report.text()`` and the notebook display explain it.
    """

    function: str
    cluster: str
    folder: str
    workdir: str
    seed: int
    max_num_timeout: int
    signal_delay_s: float  # what the signal leaves before the hard kill (the budget)
    schedule: list[PlannedInterrupt]
    reference: RunOutcome
    interrupted: RunOutcome | None = None
    bisection: list[RunOutcome] = field(default_factory=list)
    first_divergence: int | None = None
    problem: str | None = None  # why the verification could not conclude
    budget_warnings: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    files_kept: bool = True

    # -- the verdict ------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """True when the results are equal and every ``checkpoint()`` fitted in its budget."""
        run = self.interrupted
        passed = self.problem is None and run is not None and bool(run.equal)
        return passed and not self.budget_warnings

    @property
    def verdict(self) -> str:
        """PASSED, FAILED, OVER BUDGET (equal results, too slow a checkpoint) or INCONCLUSIVE."""
        if self.problem is not None or self.interrupted is None:
            return "INCONCLUSIVE"
        if not self.interrupted.equal:
            return "FAILED"
        return "OVER BUDGET" if self.budget_warnings else "PASSED"

    @property
    def equal(self) -> bool | None:
        """Whether the results are equal (None when the interrupted run did not happen)."""
        return None if self.interrupted is None else self.interrupted.equal

    @property
    def overhead_s(self) -> float | None:
        """Extra wall time of the interrupted run over the reference (seconds)."""
        run, reference = self.interrupted, self.reference
        if run is None or run.elapsed_s is None or reference.elapsed_s is None:
            return None
        return run.elapsed_s - reference.elapsed_s

    def headline(self) -> str:
        """One line: the verdict."""
        name = f"verify_checkpoint({self.function})"
        run = self.interrupted
        if self.problem is not None or run is None:
            return f"{name}: INCONCLUSIVE: {self.problem or 'no interrupted run'}"
        count = plural(run.applied, "interrupt")
        if run.equal and self.budget_warnings:
            return (
                f"{name}: OVER BUDGET: the result with {count} equals the reference, but "
                "checkpoint() takes longer than the signal leaves before the hard kill"
            )
        if run.equal:
            return f"{name}: PASSED: the result with {count} equals the reference"
        where = ""
        if self.first_divergence is not None:
            where = f" after interrupt {self.first_divergence}"
            planned = self.schedule[self.first_divergence - 1]
            where += f" ({planned.reason} at {planned.fraction:.0%})"
        what = "the interrupted run failed" if not run.ok else "the results differ"
        return f"{name}: FAILED: {what}{where}"

    # -- text -------------------------------------------------------------------------------

    def text(self) -> str:
        """The whole report as plain text."""
        lines = [self.headline()]
        lines.append(f"  reference:   {_run_line(self.reference)}")
        run = self.interrupted
        if run is not None:
            lines.append(f"  interrupted: {_run_line(run)}; {self._mix_text(run)}")
            if run.difference:
                lines.append(f"  difference:  {run.difference}")
            if run.interrupts:
                lines += _text_table([_COLUMNS, *map(_interrupt_cells, run.interrupts)])
            if self.bisection:
                lines.append(f"  bisection:   {self._bisection_text()}")
            overhead = self._overhead_text(run)
            if overhead:
                lines.append(f"  overhead:    {overhead}")
        lines.append(f"  budget:      {self._budget_text()}")
        for warning in self.budget_warnings:
            lines.append(f"    warning: {warning}")
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        lines.append(f"  {self._footer()}")
        return "\n".join(lines)

    def _mix_text(self, run: RunOutcome) -> str:
        applied = [r for r in run.interrupts if r.applied]
        reasons = [r.reason for r in applied]
        mix = (
            f"{plural(reasons.count('preemption'), 'preemption')}, "
            f"{plural(reasons.count('timeout'), 'timeout')}"
        )
        skipped = len(self.schedule) - sum(1 for r in applied if r.planned)
        more = f"; {skipped} planned but not sent: the job had ended" if skipped else ""
        limit = f"max_num_timeout={self.max_num_timeout}"
        return f"{plural(len(applied), 'interrupt')} ({mix}; {limit}{more})"

    def _bisection_text(self) -> str:
        steps = "; ".join(
            f"{step.label}: {'equal' if step.equal else 'differ'} (job {step.job_id})"
            for step in self.bisection
        )
        if self.first_divergence is not None:
            steps += f" -> interrupt {self.first_divergence} is the first after which they differ"
        return steps

    def _overhead_text(self, run: RunOutcome) -> str:
        overhead = self.overhead_s
        reference = self.reference.elapsed_s
        if overhead is None or not reference or not run.ok:
            return ""
        checkpoint = sum(r.checkpoint_s or 0.0 for r in run.interrupts)
        gaps = sum(r.requeue_gap_s or 0.0 for r in run.interrupts)
        rest = overhead - checkpoint - gaps
        return (
            f"{overhead:+.2f} s ({overhead / reference:+.0%}) over the reference's "
            f"{reference:.2f} s: checkpoints {checkpoint:.3f} s in all, waiting for requeues "
            f"{gaps:.2f} s, restarts and redone work {rest:.2f} s"
        )

    def _budget_text(self) -> str:
        slowest = max(
            (r.checkpoint_s for r in self._all_records() if r.checkpoint_s is not None),
            default=None,
        )
        if self.budget_warnings:
            return f"{plural(len(self.budget_warnings), 'checkpoint')} over budget"
        if slowest is None:
            return f"no checkpoint() was timed (the signal leaves {self.signal_delay_s:g} s)"
        return (
            f"ok: the slowest checkpoint (checkpoint() and its write) took {slowest:.3f} s; "
            f"the signal leaves {self.signal_delay_s:g} s"
        )

    def _all_records(self) -> list[InterruptRecord]:
        runs = [self.interrupted, *self.bisection] if self.interrupted else []
        return [record for run in runs if run for record in run.interrupts]

    def _footer(self) -> str:
        files = (
            f"files kept for inspection in {self.workdir}"
            if self.files_kept
            else "run folders removed"
        )
        return (
            f"{self.wall_s:.1f} s of verification on the {self.cluster} backend (seed {self.seed}; "
            f"jobs in {self.folder}); {files}"
        )

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"<VerificationReport {self.headline()}>"

    # -- HTML and widget ----------------------------------------------------------------------

    def html(self) -> str:
        """The whole report as static HTML (what a saved notebook shows without a kernel)."""
        return f"<div class='jsc-verify'>{self._summary_html()}{self._details_html()}</div>"

    def _summary_html(self) -> str:
        verdict = self.verdict
        color = {"PASSED": _PASS_COLOR, "FAILED": _FAIL_COLOR}.get(verdict, _WARN_COLOR)
        headline = self.headline().split(": ", 2)[-1]
        rows = [("reference", _run_line(self.reference))]
        run = self.interrupted
        if run is not None:
            rows.append(("interrupted", f"{_run_line(run)}; {self._mix_text(run)}"))
            if run.difference:
                rows.append(("difference", run.difference))
            if self.bisection:
                rows.append(("bisection", self._bisection_text()))
            overhead = self._overhead_text(run)
            if overhead:
                rows.append(("overhead", overhead))
        rows.append(("budget", self._budget_text()))
        body = "".join(
            f"<tr><th style='{_CELL_STYLE}'>{escape(name)}</th>"
            f"<td style='{_CELL_STYLE}'>{escape(text)}</td></tr>"
            for name, text in rows
        )
        warnings = "".join(
            f"<div style='color:{_WARN_COLOR}'>⚠ {escape(text)}</div>"
            for text in [*self.budget_warnings, *self.warnings]
        )
        return (
            f"<div><b>verify_checkpoint({escape(self.function)})</b> "
            f"<span style='background:{color};color:#fff;border-radius:3px;padding:1px 6px;"
            f"font-weight:bold;font-size:12px'>{verdict}</span> {escape(headline)}</div>"
            f"<table style='{_TABLE_STYLE}'>{body}</table>{warnings}"
        )

    def _interrupts_html(self) -> str:
        run = self.interrupted
        if run is None or not run.interrupts:
            return ""
        head = "".join(f"<th style='{_CELL_STYLE}'>{escape(name)}</th>" for name in _COLUMNS)
        rows = []
        for record in run.interrupts:
            cells = "".join(
                f"<td style='{_CELL_STYLE}'>{escape(words)}</td>"
                for words in _interrupt_cells(record)
            )
            style = f" style='color:{_WARN_COLOR}'" if record.budget or record.not_requeued else ""
            rows.append(f"<tr{style}>{cells}</tr>")
        return (
            f"<table class='jsc-verify-interrupts' style='{_TABLE_STYLE}'><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )

    def _details_html(self) -> str:
        footer = f"<div style='font-size:11px;color:#616161'>{escape(self._footer())}</div>"
        return self._interrupts_html() + footer

    def widget(self) -> Any:
        """An ipywidgets view: the verdict, and the interrupts and runs in collapsible parts."""
        import ipywidgets  # late: only a notebook needs it

        parts = [("interrupts", self._interrupts_html()), ("jobs", self._jobs_html())]
        parts = [(title, content) for title, content in parts if content]
        accordion = ipywidgets.Accordion(
            children=[ipywidgets.HTML(content) for _, content in parts]
        )
        for index, (title, _) in enumerate(parts):
            accordion.set_title(index, title)
        accordion.selected_index = 0 if parts and not self.ok else None
        footer = ipywidgets.HTML(
            f"<div style='font-size:11px;color:#616161'>{escape(self._footer())}</div>"
        )
        return ipywidgets.VBox([ipywidgets.HTML(self._summary_html()), accordion, footer])

    def _jobs_html(self) -> str:
        runs = [self.reference, *([self.interrupted] if self.interrupted else []), *self.bisection]
        rows = "".join(
            f"<tr><td style='{_CELL_STYLE}'>{escape(run.label)}</td>"
            f"<td style='{_CELL_STYLE}'><code>{escape(run.job_id)}</code></td>"
            f"<td style='{_CELL_STYLE}'>{escape(_run_line(run))}</td>"
            f"<td style='{_CELL_STYLE}'><code>{escape(run.workdir)}</code></td></tr>"
            for run in runs
        )
        return f"<table style='{_TABLE_STYLE}'>{rows}</table>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        if in_kernel():
            with contextlib.suppress(ImportError):  # no ipywidgets: the static rendering
                bundle.update(self.widget()._repr_mimebundle_())
        bundle["text/plain"] = self.text()
        bundle["text/html"] = self.html()
        return bundle


_COLUMNS = ("#", "moment (of the reference)", "reason", "checkpoint()", "wrote", "next run")


def _text_table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  " + "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip()
        for row in rows
    ]


def failure_line(error: str) -> str:
    """The line of a job's failure worth showing: the exception that ended its traceback."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    # FailedJobError: "... with trace:", dashes, the traceback, dashes, where the logs are.
    separators = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    if len(separators) >= 2 and separators[-1] > 0:
        return lines[separators[-1] - 1]
    return lines[-1] if lines else error


def _run_line(run: RunOutcome) -> str:
    elapsed = f" in {run.elapsed_s:.2f} s" if run.elapsed_s is not None else ""
    line = f"job {run.job_id}, {run.state.lower()}{elapsed}"
    if run.error is not None:
        line += f" ({truncate(failure_line(run.error), 200)})"
    return line


def _progress_text(fields: dict[str, Any] | None) -> str:
    if not fields:
        return ""
    return ", ".join(f"{key}={value}" for key, value in fields.items())


def _interrupt_cells(record: InterruptRecord) -> tuple[str, ...]:
    """The columns of one interrupt: #, moment, reason, checkpoint(), wrote, next run."""
    planned = record.planned
    index = str(planned.index) if planned else "-"
    if planned is None:
        moment = f"run {record.run}, not sent by the verifier"
    else:
        moment = f"{planned.fraction:.0%}"
        if record.applied and record.after_s is not None:
            moment += f" ({record.after_s:.2f} s into run {record.run})"
    if not record.applied:
        return (index, moment, planned.reason if planned else "", "", "", record.note)
    checkpoint = "" if record.checkpoint_s is None else f"{record.checkpoint_s:.3f} s"
    if record.progress_before:
        checkpoint += f" at {_progress_text(record.progress_before)}"
    wrote = []
    if record.checkpoint_bytes is not None:
        wrote.append(f"payload {format_size(record.checkpoint_bytes)}")
    if record.files_bytes is not None:
        wrote.append(f"files {format_size(record.files_bytes)}")
    if record.not_requeued is not None:
        after = f"not requeued: {record.not_requeued}"
    elif record.next_run is not None:
        gap = f" after {record.requeue_gap_s:.2f} s" if record.requeue_gap_s is not None else ""
        after = f"run {record.next_run} started{gap}"
        if record.resumed_at:
            after += f", resumed at {_progress_text(record.resumed_at)}"
    else:
        after = record.note or "no next run recorded"
    if record.budget:
        after += " [over the checkpoint budget]"
    reason = record.reason or "no signal recorded"
    return (index, moment, reason, checkpoint, ", ".join(wrote), after)
