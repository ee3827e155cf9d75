"""``python -m jupyter_slurm_ckpt.as_submitit SCRIPT [ARGS...]`` (or ``-m MODULE [ARGS...]``):
run a program written for submitit, unchanged, on this package.

Like ``python -m coverage run``: the program runs as ``__main__`` with its own arguments
(``sys.argv[0]`` is the script, ``sys.path[0]`` its folder), after the switch of
:mod:`jupyter_slurm_ckpt.submitit_alias` made ``import submitit`` mean this package, in this
process and in every process it starts. Everything after SCRIPT (or MODULE) is the program's.
"""

from __future__ import annotations

import os
import runpy
import sys
import types
from typing import Any

from .submitit_alias import as_submitit

USAGE = """\
usage: python -m jupyter_slurm_ckpt.as_submitit SCRIPT [ARGS...]
       python -m jupyter_slurm_ckpt.as_submitit -m MODULE [ARGS...]

Run a program written for submitit on jupyter_slurm_ckpt: `import submitit` means
jupyter_slurm_ckpt in the program and in every process it starts (its jobs included).
Everything after SCRIPT or MODULE goes to the program."""


def main(argv: list[str] | None = None) -> int:
    """Run the program ``argv`` names (default: this command's arguments); its exit status.

    The program's own ``SystemExit`` and exceptions pass through, as they would from
    ``python SCRIPT``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "-m":
        if len(argv) < 2:
            print(f"-m needs a module name\n\n{USAGE}", file=sys.stderr)
            return 2
        module, arguments = argv[1], argv[2:]
        sys.argv = [module, *arguments]  # run_module puts the module's file in argv[0]
        sys.path[0] = os.getcwd()  # as `python -m MODULE` has it
        as_submitit()
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    script = argv[0]
    if not os.path.exists(script):
        print(f"{script}: no such file\n\n{USAGE}", file=sys.stderr)
        return 2
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python SCRIPT` has it
    as_submitit()
    runpy.run_path(script, run_name="__main__")
    return 0


class _CallableModule(types.ModuleType):
    """``jupyter_slurm_ckpt.as_submitit()`` works even once this module, which has the same
    name, is imported (the import binds the module in the package over the function)."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        as_submitit(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule
