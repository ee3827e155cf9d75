"""sbatch's long options, and the option an abbreviated ``--name`` means to sbatch.

sbatch reads its command line with ``getopt_long``: an exact long option name is that option,
and a prefix of exactly one long option name is that option too (``--out=x`` is
``--output=x``, ``--sig=...`` is ``--signal=...``); a prefix of several is refused as
ambiguous. A check of the options a user passes must resolve them the same way first.

The names are those of Slurm 22.05's sbatch as its own getopt reports them (``sbatch --a``
lists every option that starts with "a"); ``tests/test_sbatch_abbreviations.py`` compares the
list with the installed sbatch, prefix by prefix.
"""

from __future__ import annotations

SBATCH_LONG_OPTIONS: tuple[str, ...] = (
    "account", "acctg-freq", "array",
    "batch", "bb", "bbf", "begin",
    "chdir", "cluster", "cluster-constraint", "clusters", "comment", "constraint", "container",
    "context", "contiguous", "core-spec", "cores-per-socket", "cpu-freq", "cpus-per-gpu",
    "cpus-per-task",
    "deadline", "delay-boot", "dependency", "distribution",
    "error", "exclude", "exclusive", "export", "export-file", "extra-node-info",
    "get-user-env", "gid", "gpu-bind", "gpu-freq", "gpus", "gpus-per-node", "gpus-per-socket",
    "gpus-per-task", "gres", "gres-flags",
    "help", "hint", "hold",
    "ignore-pbs", "input",
    "job-name",
    "kill-on-invalid-dep",
    "licenses",
    "mail-type", "mail-user", "mcs-label", "mem", "mem-bind", "mem-per-cpu", "mem-per-gpu",
    "mincpus",
    "network", "nice", "no-kill", "no-requeue", "nodefile", "nodelist", "nodes", "ntasks",
    "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node", "ntasks-per-socket",
    "ntasks-per-tres",
    "open-mode", "output", "overcommit", "oversubscribe",
    "parsable", "partition", "power", "prefer", "priority", "profile", "propagate",
    "qos", "quiet",
    "reboot", "requeue", "reservation",
    "signal", "sockets-per-node", "spread-job", "switches",
    "tasks-per-node", "test-only", "thread-spec", "threads-per-core", "time", "time-min", "tmp",
    "uid", "usage", "use-min-nodes",
    "verbose", "version",
    "wait", "wait-all-nodes", "wckey", "wrap",
)  # fmt: skip


def resolve_long_option(name: str) -> str | None:
    """The long option sbatch reads ``--name`` as; None when it knows no such option.

    An unknown name is left to sbatch (a newer Slurm may know it; sbatch then reports it).

    Raises
    ------
    ValueError
        When ``name`` abbreviates several options: sbatch refuses it as ambiguous.
    """
    if name in SBATCH_LONG_OPTIONS:
        return name
    candidates = [option for option in SBATCH_LONG_OPTIONS if option.startswith(name)]
    if len(candidates) > 1:
        listed = ", ".join(f"--{option}" for option in candidates)
        raise ValueError(
            f"sbatch option --{name} is ambiguous (sbatch reads it as one of {listed}); "
            "write the option in full"
        )
    return candidates[0] if candidates else None
