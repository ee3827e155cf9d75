"""The buttons of the job widget: *Simulate preemption*, *Simulate timeout*, *Cancel* and
*Resubmit*. An action runs in a short-lived thread so the kernel's comm handling is free again
at once; a failing action shows its error beside the buttons.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Unicode

from ..core.job import Job
from ..core.paths import JobKey
from .html import escape
from .status import JobStatus
from .watcher import Watcher

#: What a button does to the job; it may return words for the note beside the buttons.
JobAction = Callable[[Job[Any]], "str | None"]


def _interrupt_preemption(job: Job[Any]) -> None:
    job._interrupt(timeout=False)


def _interrupt_timeout(job: Job[Any]) -> None:
    job._interrupt(timeout=True)


def _cancel(job: Job[Any]) -> None:
    job.cancel()


def _resubmit(job: Job[Any]) -> str:
    again = job.resubmit_once()
    if not again.created:  # another view, or another process, was first
        return f"already resubmitted as job {again.job.job_id}"
    return f"resubmitted as job {again.job.job_id} (from the last checkpoint)"


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class ActionBar(widgets.HBox):
    """*Simulate preemption*, *Simulate timeout* and *Cancel* for the job ``target()`` returns,
    and *Resubmit* (from the last checkpoint) for one that ended without its result.

    Parameters
    ----------
    target
        Returns the job the buttons act on (the selected row of a table), or None.
    watcher
        Poked after an action so the view shows its effect quickly.
    """

    busy = Bool(False).tag(sync=True)
    error = Unicode("").tag(sync=True)
    last_action = Unicode("").tag(sync=True)

    def __init__(
        self, target: Callable[[], Job[Any] | None], watcher: Watcher, **kwargs: Any
    ) -> None:
        self._target = target
        self._watcher = watcher
        self._lock = threading.RLock()
        self._status: JobStatus | None = None
        # Jobs resubmitted from here (the watcher reads an ended job's folder no more).
        self._resubmitted: set[JobKey] = set()
        self.preempt_button = self._button(
            "Simulate preemption", "bolt", _interrupt_preemption,
            "job._interrupt(timeout=False): signal, checkpoint(), requeue",
        )
        self.timeout_button = self._button(
            "Simulate timeout", "hourglass", _interrupt_timeout,
            "job._interrupt(timeout=True): counts against max_num_timeout",
        )
        self.cancel_button = self._button(
            "Cancel", "stop", _cancel, "job.cancel(): stop the job and its whole process tree"
        )
        self.cancel_button.button_style = "danger"
        self.resubmit_button = self._button(
            "Resubmit", "redo", _resubmit,
            "job.resubmit(): a new job that continues from the last checkpoint",
        )
        self.resubmit_button.layout.display = "none"
        # The note takes the room left beside the buttons, or a line of its own.
        self._note = widgets.HTML(layout=widgets.Layout(margin="0 0 0 8px", flex="1 1 12em"))
        buttons = [self.preempt_button, self.timeout_button, self.cancel_button]
        super().__init__(
            children=[*buttons, self.resubmit_button, self._note],
            # In a narrow notebook (beside the sidebar) the buttons wrap onto the next line,
            # whole: none is shrunk until its label is cut.
            layout=widgets.Layout(flex_flow="row wrap", align_items="center", flex="1 1 auto"),
            **kwargs,
        )
        self._refresh()

    def _button(
        self, label: str, icon: str, action: JobAction, tooltip: str
    ) -> widgets.Button:
        """A button that runs ``action`` on the target job (see :meth:`_act`)."""
        button = widgets.Button(
            description=label,
            icon=icon,
            tooltip=tooltip,
            layout=widgets.Layout(width="auto", flex="0 0 auto"),  # never shrunk: wrapped
        )
        button.on_click(lambda _: self._act(label, action))
        return button

    def update(self, status: JobStatus | None) -> None:
        """Enable the buttons that apply to the target job in this state."""
        with self._lock:
            self._status = status
            self._refresh()

    def _refresh(self) -> None:
        status = self._status
        live = status is not None and not status.done
        # Only a RUNNING job can be interrupted; the in-process debug backend checkpoints any
        # job that has not ended.
        interruptible = live and status is not None and (
            status.state == "RUNNING" or status.backend == "debug"
        )
        self.preempt_button.disabled = self.busy or not interruptible
        self.timeout_button.disabled = self.busy or not interruptible
        self.cancel_button.disabled = self.busy or not live
        # Only for a job that ended without its result, and was not resubmitted yet.
        resubmittable = (
            status is not None
            and status.done
            and status.state not in ("COMPLETED", "DONE")
            and not self._resubmitted_here()
            and not any(row.event == "resubmitted" for row in status.timeline)
        )
        self.resubmit_button.layout.display = "" if resubmittable else "none"
        self.resubmit_button.disabled = self.busy
        if self.error:
            self._note.value = f"<span style='color:#c62828'>{escape(self.error)}</span>"
        else:
            self._note.value = f"<span style='opacity:0.7'>{escape(self.last_action)}</span>"

    def _resubmitted_here(self) -> bool:
        job = self._target()
        return job is not None and job.key in self._resubmitted

    def _act(self, label: str, action: JobAction) -> None:
        """Run a button's action off the comm handler (it may take a second)."""
        with self._lock:
            job = self._target()
            if job is None or self.busy:
                return
            self.busy = True
            self.error = ""
            self.last_action = f"{label}…"
            self._refresh()
        if job.cluster == "debug":  # runs the user's checkpoint() in this process: stay here
            self._perform(label, action, job)
            return
        threading.Thread(
            target=self._perform,
            args=(label, action, job),
            name="jupyter_slurm_ckpt-action",
            daemon=True,
        ).start()

    def _perform(self, label: str, action: JobAction, job: Job[Any]) -> None:
        error, said = "", None
        try:
            said = action(job)
        except Exception as exc:  # shown in the widget: never a traceback in the output
            error = f"{label} failed: {_one_line(exc)}"
        with self._lock:
            if action is _resubmit and not error:
                self._resubmitted.add(job.key)
            self.error = error
            done = f"{label}: {said or 'done'} at {time.strftime('%H:%M:%S')}"
            self.last_action = "" if error else done
            self.busy = False
            self._refresh()
        self._watcher.poke()
