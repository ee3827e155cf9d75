"""``submitit.helpers`` *is* ``jupyter_slurm_ckpt.helpers`` (one module: patching one patches
the other)."""

import sys

import jupyter_slurm_ckpt.helpers

sys.modules[__name__] = jupyter_slurm_ckpt.helpers
