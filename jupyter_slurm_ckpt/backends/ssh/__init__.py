"""The SSH backend: Slurm on a cluster reached with the user's own ``ssh``, from a laptop.

The submitting side, here: ``executor`` (``SshExecutor``: the Slurm backend's parameters and
script, submitted there), ``job`` (``SshJob``, seen from here), ``states`` (what the cluster
last said, refreshed for all jobs in one round trip) and ``mirror`` (this machine's copy of
their folders, which the views read), over ``session`` (a few long-lived remote processes),
``connection`` (one multiplexed OpenSSH connection) and ``protocol`` (the messages). The side
on the cluster: ``remote`` (this package, answering; ``sync`` is one job's part of an answer).
"""

from .executor import SshExecutor
from .job import SshJob

__all__ = ["SshExecutor", "SshJob"]
