"""How jobs are watched and shown: one status snapshot, its renderings, the watcher, the widget.

``snapshot`` reads a job into a :class:`~.snapshot.JobStatus` (from its folder and, while it
lives, its backend); ``text`` and ``html`` render it; ``watcher`` is the one thread that polls
every watched job; ``widget`` is the live ipywidgets view. Nothing here imports IPython or
ipywidgets but ``widget`` (and what displays it).
"""
