"""How a job shows itself: the live widget in a Jupyter kernel, its text and HTML elsewhere.

``Job._repr_mimebundle_`` calls :func:`job_mimebundle` (the package registers it with the core's
``register_display``: the core renders nothing itself). Never imports IPython: it looks for a
running kernel in ``sys.modules``.
"""

from __future__ import annotations

import sys
from typing import Any

from ..core.job import Job
from .html import render_html
from .status import collect_status
from .text import render_text


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can be shown); never imports IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def job_mimebundle(job: Job[Any]) -> dict[str, Any]:
    """``Job._repr_mimebundle_``: the live widget in a kernel, text and HTML elsewhere."""
    if in_kernel():
        try:
            from .widget import widget_for
        except ImportError:  # ipywidgets is not installed: the static rendering still works
            pass
        else:
            return widget_for(job)._repr_mimebundle_()
    status = collect_status(job)
    return {"text/plain": render_text(status), "text/html": render_html(status)}
