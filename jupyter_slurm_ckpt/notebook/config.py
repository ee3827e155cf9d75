"""The defaults of the ``%%slurm`` options: traits of :class:`SlurmConfig`, set with
``%config SlurmMagics.partition = "gpu"`` or in ``ipython_config.py`` (``SlurmMagics`` is a
``SlurmConfig``).
"""

from __future__ import annotations

from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode

from ..views.polling import SchedulerPolling

CLUSTER_CHOICES = ("auto", "slurm", "local", "debug")


class SlurmConfig(SchedulerPolling):
    """Defaults of the ``%%slurm`` options, settable with ``%config`` or ``ipython_config.py``
    (and how often Slurm is asked about the jobs the widgets watch: ``poll_*_s``)."""

    timeout = Float(None, allow_none=True, help="Time limit of each run, in minutes.").tag(
        config=True
    )
    partition = Unicode(None, allow_none=True, help="Slurm partition.").tag(config=True)
    gpus_per_node = Int(None, allow_none=True, help="GPUs per node.").tag(config=True)
    cpus_per_task = Int(None, allow_none=True, help="CPUs per task.").tag(config=True)
    mem_gb = Float(None, allow_none=True, help="Memory per node, in GB.").tag(config=True)
    nodes = Int(None, allow_none=True, help="Number of nodes.").tag(config=True)
    tasks_per_node = Int(None, allow_none=True, help="Tasks per node.").tag(config=True)
    name = Unicode(
        None, allow_none=True, help="Job name (when unset: the name of the submitted callable)."
    ).tag(config=True)
    max_num_timeout = Int(
        3, help="How many time limits a job may be requeued after (preemptions are unlimited)."
    ).tag(config=True)
    signal_delay_s = Float(
        None,
        allow_none=True,
        help="Seconds between the checkpoint signal and the time limit.",
    ).tag(config=True)
    local_slots = Int(
        None,
        allow_none=True,
        help="Local backend: how many of your local jobs run at once on this machine (the "
        "others wait PENDING, as on Slurm). Default: as many as its CPUs (and memory, for jobs "
        "that give --mem-gb) hold.",
    ).tag(config=True)
    cluster = Enum(
        list(CLUSTER_CHOICES),
        "auto",
        help="Backend: auto (Slurm when sbatch is on PATH, else local), slurm, local or debug.",
    ).tag(config=True)
    folder = Unicode(
        "slurm_jobs",
        help="Job folder, relative to the kernel's working directory (the notebook's folder).",
    ).tag(config=True)
    setup = List(
        Unicode(),
        help="Shell commands run before the job (in the sbatch script; locally in bash), "
        "repeatable.",
    ).tag(config=True)
    sbatch = Dict(
        value_trait=Unicode(),
        help="Extra sbatch flags as KEY=VALUE, e.g. account=abc (repeatable).",
    ).tag(config=True)
    by_value = List(
        Unicode(),
        help="Modules pickled by value for the submission (local helper modules; repeatable).",
    ).tag(config=True)
    widget = Bool(True, help="Display the live job widget after submitting.").tag(config=True)
    max_payload_mb = Float(
        100.0, help="Refuse payloads (the pickled callable and arguments) larger than this."
    ).tag(config=True)
    warn_global_mb = Float(
        10.0, help="Warn when the payload captures a notebook global larger than this."
    ).tag(config=True)
