"""The defaults of the ``%%slurm`` options: traits of :class:`SlurmConfig`, set with
``%config SlurmMagics.partition = "gpu"`` or in ``ipython_config.py`` (``SlurmMagics`` is a
``SlurmConfig``).
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, validate

from ..backends.ssh.target import SshTarget, is_ssh_url
from ..views.polling import SchedulerPolling

CLUSTER_CHOICES = ("auto", "slurm", "local", "debug", "ssh")


def check_cluster(text: str) -> str:
    """``auto``, ``slurm``, ``local``, ``debug``, ``ssh`` or ``ssh://[user@]host[:port]``;
    raises ``ValueError`` otherwise."""
    if text in CLUSTER_CHOICES:
        return text
    if is_ssh_url(text):
        target = SshTarget.parse(text)
        if target.folder:
            raise ValueError(f"{text!r}: give the folder on the cluster with --folder")
        return text
    raise ValueError(
        f"expected one of {', '.join(CLUSTER_CHOICES)} or ssh://[user@]host, not {text!r}"
    )


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
    cluster = Unicode(
        "auto",
        help="Backend: auto (SlurmMagics.remote when set, else Slurm when sbatch is on PATH, "
        "else local), slurm, local, debug, or ssh://[user@]host (Slurm on a cluster reached "
        "with your ssh; ssh alone: SlurmMagics.remote).",
    ).tag(config=True)
    folder = Unicode(
        "slurm_jobs",
        help="Job folder, relative to the kernel's working directory (the notebook's folder); "
        "on a cluster reached over SSH, the folder there (default: SlurmMagics.remote_folder).",
    ).tag(config=True)
    remote = Unicode(
        None,
        allow_none=True,
        help="The cluster reached over SSH that cells submit to unless --cluster says "
        "otherwise: ssh://[user@]host[:port], or a host of your ~/.ssh/config "
        "(e.g. login-node).",
    ).tag(config=True)
    remote_python = Unicode(
        "python3",
        help="The Python on the cluster reached over SSH that has jupyter_slurm_ckpt installed "
        "(it answers the kernel and runs the jobs), e.g. ~/env/bin/python.",
    ).tag(config=True)
    remote_folder = Unicode(
        "slurm_jobs",
        help="The job root on the cluster reached over SSH: absolute, or in your home there.",
    ).tag(config=True)

    @validate("cluster")
    def _known_cluster(self, proposal: dict[str, Any]) -> str:
        try:
            return check_cluster(str(proposal["value"]))
        except ValueError as error:
            raise TraitError(f"SlurmMagics.cluster: {error}") from None

    @validate("remote")
    def _ssh_target(self, proposal: dict[str, Any]) -> str | None:
        value = proposal["value"]
        if value is None:
            return None
        try:
            target = SshTarget.parse(str(value))
        except ValueError as error:
            raise TraitError(f"SlurmMagics.remote: {error}") from None
        if target.folder:
            raise TraitError("SlurmMagics.remote: set the folder with SlurmMagics.remote_folder")
        return str(value)
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
