"""``submitit.core.utils``, as jupyter_slurm_ckpt (``DelayedSubmission`` lives here in
submitit: pickles written by submitit name it at this path)."""

from jupyter_slurm_ckpt.core.errors import FailedJobError as FailedJobError
from jupyter_slurm_ckpt.core.errors import FailedSubmissionError as FailedSubmissionError
from jupyter_slurm_ckpt.core.errors import UncompletedJobError as UncompletedJobError
from jupyter_slurm_ckpt.core.paths import JobPaths as JobPaths
from jupyter_slurm_ckpt.helpers import CommandFunction as CommandFunction
from jupyter_slurm_ckpt.helpers import DelayedSubmission as DelayedSubmission
from jupyter_slurm_ckpt.helpers import environment_variables as environment_variables
