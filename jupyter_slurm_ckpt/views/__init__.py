"""How jobs are watched and shown: one status snapshot, its renderings, the watcher, the widget.

``status`` reads a job into a :class:`~.status.JobStatus` (from its folder and, while it
lives, its backend); ``text`` and ``html`` render it; ``watcher`` is the one thread that polls
every watched job; ``widget`` is the live ipywidgets view (its buttons: ``actions``; its saved
fallback: ``saved_outputs``), the only modules here that import IPython or ipywidgets.
"""
