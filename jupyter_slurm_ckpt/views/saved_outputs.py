"""Keeping a saved notebook's outputs current: a displayed widget's ``text/html`` fallback is
published again when its jobs changed, so a notebook saved after a headless run (nbclient,
papermill) shows the jobs' latest state without a kernel. Only the main thread publishes.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython import get_ipython
from IPython.display import DisplayHandle

if TYPE_CHECKING:
    from .widget import LiveView


@dataclass(eq=False)
class _Shown:
    widget: LiveView
    handle: DisplayHandle
    key: tuple[tuple[Any, ...], ...]


def _saved_key(widget: LiveView) -> tuple[tuple[Any, ...], ...]:
    # What makes a saved output worth re-publishing: the state, the counters (runs too: a
    # snapshot may pair the state read before a requeue with the events read after it, so the
    # resume changes nothing else) and the outcome. Each re-publication makes JupyterLab render
    # the output (and the live view) again, so events that change none of these (a checkpoint
    # line, a log line) wait for the next one.
    return tuple(
        (
            s.state, s.runs, s.requeues, s.done, s.terminal_seen,
            s.result, s.failure, s.budget_warnings,
        )
        for s in widget.statuses()
    )


class _SavedOutputs:
    """Re-publishes a displayed widget's output (its text/html fallback) when its job changed.

    Only the main thread publishes: after each executed cell, and, when the watcher sees a
    change while the kernel is idle, from a callback queued on the kernel's main event loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shown: list[_Shown] = []
        self._queued = False

    def remember(self, widget: LiveView, handle: DisplayHandle) -> None:
        shell = get_ipython()
        if shell is None:
            return
        if self.refresh not in shell.events.callbacks["post_run_cell"]:
            shell.events.register("post_run_cell", self.refresh)
        with self._lock:
            self._shown.append(_Shown(widget, handle, _saved_key(widget)))

    def changed(self, widget: LiveView) -> None:
        """Called from the watcher thread: queue a refresh on the main thread if needed."""
        with self._lock:
            stale = any(
                shown.widget is widget and shown.key != _saved_key(widget)
                for shown in self._shown
            )
            if not stale or self._queued:
                return
            loop = getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
            if loop is None:  # no kernel: the next executed cell refreshes
                return
            self._queued = True
        loop.add_callback(self.refresh)  # thread-safe; runs when the kernel is free

    def refresh(self, *_: Any) -> None:
        """Main thread: publish every output whose job changed since it was published."""
        with self._lock:
            self._queued = False
            shown_now = list(self._shown)
        for shown in shown_now:
            widget = shown.widget
            if widget.comm is not None:
                # A deleted job folder, say, fails here: the watcher shows that problem.
                with contextlib.suppress(Exception):
                    widget.sync_ended()
            key = _saved_key(widget)
            finished = all(s.done and s.terminal_seen for s in widget.statuses())
            if widget.comm is not None and key != shown.key:
                shown.key = key
                shown.handle.update(widget)
            if widget.comm is None or finished:  # closed, or nothing more will change
                with self._lock:
                    self._shown.remove(shown)

saved_outputs = _SavedOutputs()
