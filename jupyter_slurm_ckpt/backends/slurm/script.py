"""The sbatch command line and batch script of a Slurm submission.

Every option goes to ``sbatch`` as its own argv item (never through a shell or an ``#SBATCH``
line), so no user value is ever parsed twice. The script itself interpolates only our own
values (interpreter, folder), quoted with ``shlex.quote``; the ``setup`` lines are user shell by
design (``--setup 'module load cuda'``) and run as written.

Why the script looks the way it does (measured on Slurm 22.05, see the reference notes):

- ``exec python``: the time-limit warning ``--signal=B:USR2@T`` reaches only the batch shell,
  and a bash ``trap`` cannot run while bash waits on a child. After ``exec`` the batch shell *is*
  the worker, which handles USR2 itself. Multi-task jobs run their tasks under ``srun`` instead
  and take the warning as ``--signal=USR2@T`` (steps only).
- ``trap '' USR2`` right before the ``exec``: an ignored disposition survives ``exec``, so a USR2
  that arrives while Python is still importing is dropped instead of killing the job (Python's
  default for USR2 is to terminate); the worker installs its handler before it reports
  ``started``.
- ``--open-mode=append``: Slurm truncates the output files at every requeue otherwise.
- ``--hold``: the job cannot start before its payload and description are written; the executor
  releases it once they are.
- ``teardown`` lines must run after the worker, so the shell cannot ``exec`` it: the worker then
  runs in the background and the shell forwards the warning signal and SIGTERM to it (``trap``;
  bash runs a trap when a signal interrupts ``wait``), and ``_interrupt`` signals the batch shell
  only. Forwarding SIGTERM matters: with ``proctrack/cgroup``, as production clusters run, Slurm
  sends every signal but SIGKILL only to the direct children of slurmstepd, that is to the shell
  (``proctrack/linuxproc`` signals the whole tree, and the worker handles the second SIGTERM as
  the same one). The shell itself survives SIGTERM, so that the teardown also runs after a
  requeued, cancelled or timed-out run (Slurm's SIGKILL comes KillWait later): it pairs with the
  setup, which every run runs.
- ``srun --cpus-per-task``: srun 22.05 and 23.02 read ``SRUN_CPUS_PER_TASK``, not the
  ``SLURM_CPUS_PER_TASK`` sbatch sets, so without it each task gets one CPU wherever
  ``task/affinity`` or ``task/cgroup`` binds. ``srun --kill-on-bad-exit``: a task that ends
  abnormally (SIGTERM, a crash) ends the others (SIGTERM, then SIGKILL KillWait later) instead
  of leaving the job running with a rank missing; task 0 records why.

The parameters are those of :mod:`.parameters` (Slurm's names: ``job_name``, ``time``...).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any

from ...core.parameters import CONTROL_CHARACTERS, DEFAULT_SIGNAL_DELAY_S
from ...core.paths import JobPaths
from .long_options import resolve_long_option

#: Named parameters that map one to one to an sbatch flag of the same name (dashes for "_").
_PLAIN_FLAGS = (
    "partition",
    "qos",
    "account",
    "constraint",
    "exclude",
    "nodelist",
    "comment",
    "gres",
    "mem_per_cpu",
    "mem_per_gpu",
    "cpus_per_gpu",
    "gpus_per_task",
    "mail_type",
    "mail_user",
    "dependency",
    "reservation",
    "wckey",
)

#: sbatch flags the backend sets itself: the job would not work (or be tracked) with others.
_RESERVED_FLAGS = {
    "output": "the logs go to the job folder",
    "error": "the logs go to the job folder",
    "open-mode": "the logs are appended across requeues",
    "array": "use map_array/submit_array/batch() and array_parallelism",
    "hold": "the backend holds the job until its files are written",
    "parsable": "the backend reads the job id",
    "wrap": "the backend writes the batch script",
    "signal": "use signal_delay_s (--signal-delay-s)",
    "requeue": "checkpointing needs requeueable jobs",
    "no-requeue": "checkpointing needs requeueable jobs",
    "export": "the job needs the submitting environment (SLURM_CONF, PATH)",
    "chdir": "the job runs in the submitting directory",
}

#: sbatch flags that have a named parameter: say which one rather than accept a conflict.
_NAMED_FLAGS = {
    "time": "timeout_min (--timeout)",
    "t": "timeout_min (--timeout)",
    "job-name": "name (--name)",
    "J": "name (--name)",
    "nodes": "nodes (--nodes)",
    "N": "nodes (--nodes)",
    "cpus-per-task": "cpus_per_task (--cpus-per-task)",
    "c": "cpus_per_task (--cpus-per-task)",
    "mem": "mem_gb (--mem-gb)",
    "gpus-per-node": "gpus_per_node (--gpus-per-node)",
    "ntasks-per-node": "tasks_per_node (--tasks-per-node)",
    "partition": "partition (--partition)",
    "p": "partition (--partition)",
}

_FLAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")

#: Slurm's largest warning offset (``--signal ...@T`` is a 16-bit number of seconds).
MAX_SIGNAL_DELAY_S = 65535
ENTRY_MODULE = "jupyter_slurm_ckpt.backends.slurm.task"


def _check_text(what: str, value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError(f"{what} must be one line without control characters, not {value!r}")
    return value


def flag_name(key: str) -> str:
    """``mail_type`` -> ``mail-type`` (the sbatch spelling of a parameter name)."""
    return key.replace("_", "-")


def check_additional_parameters(value: Any) -> dict[str, Any]:
    """Validate ``additional_parameters`` / ``--sbatch KEY=VALUE``; returns a clean copy.

    Keys are sbatch long options without dashes (``mail_type`` or ``mail-type``), checked as
    the option sbatch reads them as (``out`` is ``output``: see :mod:`.long_options`).
    A value ``True`` is a flag without value, ``False``/``None`` leaves the flag out, numbers and
    strings are its value.

    Raises
    ------
    ValueError
        On a key that is not an option name, a flag the backend sets itself or that has a named
        parameter (or an abbreviation of one, or of several), or a value with a newline or other
        control character.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"additional_parameters must be a dict, not {type(value).__name__}")
    clean: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _FLAG_NAME.match(flag_name(key)):
            raise ValueError(f"sbatch option {key!r} is not an option name (e.g. mail_type)")
        flag = flag_name(key)
        # Checked as sbatch reads it: an unambiguous prefix (--out) is the option (--output).
        option = flag if flag in _NAMED_FLAGS else resolve_long_option(flag) or flag
        said = f"--{flag}" if option == flag else f"--{flag} (sbatch reads it as --{option})"
        if option in _RESERVED_FLAGS:
            raise ValueError(f"sbatch option {said} is set by jupyter_slurm_ckpt: "
                             f"{_RESERVED_FLAGS[option]}")
        if option in _NAMED_FLAGS:
            raise ValueError(f"sbatch option {said}: use the parameter {_NAMED_FLAGS[option]}")
        if isinstance(item, str):
            _check_text(f"sbatch option --{flag}", item)
        elif item is not None and not isinstance(item, (bool, int, float)):
            raise ValueError(
                f"sbatch option --{flag} needs a string, number or True, not {type(item).__name__}"
            )
        clean[key] = item
    return clean


def check_lines(name: str, value: Any) -> tuple[str, ...]:
    """Validate a list of one-line strings (``setup`` lines, ``srun_args``)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings, not {value!r}")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be a list of strings, not {value!r}")
        _check_text(f"each {name} item", item)
    return tuple(value)


def check_folder(folder: str) -> str:
    """Refuse a job folder Slurm cannot use as an output file pattern."""
    if "\\" in folder:  # a backslash turns Slurm's %-substitution off for the whole path
        raise ValueError(f"the job folder {folder!r} contains a backslash, which Slurm cannot use")
    return _check_text("the job folder", folder)


#: Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME_FORMATS = (
    (re.compile(r"^(\d+)$"), (60, 0, 0, 0)),
    (re.compile(r"^(\d+):(\d+)$"), (60, 1, 0, 0)),
    (re.compile(r"^(\d+):(\d+):(\d+)$"), (3600, 60, 1, 0)),
    (re.compile(r"^(\d+)-(\d+)$"), (86400, 3600, 0, 0)),
    (re.compile(r"^(\d+)-(\d+):(\d+)$"), (86400, 3600, 60, 0)),
    (re.compile(r"^(\d+)-(\d+):(\d+):(\d+)$"), (86400, 3600, 60, 1)),
)
#: Time limits that mean "none" (the partition's maximum applies).
UNLIMITED = ("UNLIMITED", "INFINITE")


def time_text_minutes(text: str) -> float | None:
    """Minutes of a Slurm time limit text (``"90"``, ``"1:30:00"``, ``"2-12"``), None for
    ``UNLIMITED``.

    Raises
    ------
    ValueError
        When ``text`` is none of Slurm's time formats.
    """
    text = text.strip()
    if text.upper() in UNLIMITED:
        return None
    for pattern, seconds in _TIME_FORMATS:
        found = pattern.match(text)
        if found:
            total = sum(int(part) * unit for part, unit in zip(found.groups(), seconds))
            return total / 60
    raise ValueError(
        f"{text!r} is not a Slurm time limit (minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S)"
    )


def limit_minutes(time: float | str | None) -> float | None:
    """Minutes of the ``time`` parameter (a number of minutes or Slurm's text), or None."""
    if time is None:
        return None
    return time_text_minutes(time) if isinstance(time, str) else float(time)


def time_limit_minutes(timeout_min: float | None) -> int | None:
    """Slurm limits are whole minutes: a limit is rounded up (at least 1)."""
    if timeout_min is None:
        return None
    return max(1, math.ceil(timeout_min - 1e-9))


def signal_delay(signal_delay_s: float, timeout_min: float | None) -> int:
    """Seconds between the warning signal and the time limit, as given to ``--signal``.

    At most half of the (rounded) limit, so that a short job still runs before it is warned;
    0 means no warning signal.
    """
    delay = float(signal_delay_s)
    minutes = time_limit_minutes(timeout_min)
    if minutes is not None:
        delay = min(delay, minutes * 60 / 2)
    return int(min(delay, MAX_SIGNAL_DELAY_S))


def output_pattern(folder: str, array: bool, task: int | str, stream: str) -> str:
    """The Slurm file name pattern of a log in the job folder: ``<folder>/%j_0_log.out``
    (``JobPaths.log_name`` of the job, ``task`` and ``stream``, ``"out"`` or ``"err"``).

    The folder template's ``%j`` means our job id, which for an array element is ``A_a``: it
    becomes ``%A_%a`` there (Slurm's ``%j`` is the element's own raw id). Outside an array,
    ``%A`` is the job id and ``%a`` is 0, as ``core.paths.resolve_folder`` reads them. Any other
    ``%`` is literal.
    """
    job = "%A_%a" if array else "%j"
    meaning = {"%j": job, "%A": "%A" if array else "%j", "%a": "%a" if array else "0"}
    parts = re.split(r"(%[jAa])", folder)
    text = "".join(meaning.get(part, part.replace("%", "%%")) for part in parts)
    return f"{text}/{JobPaths.log_name(job, task, stream)}"


def uses_srun(num_tasks: int, use_srun: bool | None = None) -> bool:
    """Whether the tasks run as an ``srun`` step or as the batch shell itself.

    ``use_srun`` (the parameter) forces it; by default a one-task job runs in the batch shell
    and a multi-task job under ``srun``.
    """
    return num_tasks > 1 if use_srun is None else bool(use_srun)


def interrupt_scope(parameters: Mapping[str, Any], num_tasks: int) -> list[str]:
    """The ``scancel --signal=USR2`` option that reaches the job's worker (``_interrupt``).

    srun steps get a plain ``--signal``; a worker that is the batch shell (``exec``) gets it
    with ``--full``; a batch shell that waits for its worker (``teardown``) forwards the signal,
    so it alone gets it (``--batch``), else the worker would get it twice.
    """
    if uses_srun(num_tasks, parameters.get("use_srun")):
        return []
    return ["--batch"] if parameters.get("teardown") else ["--full"]


def sbatch_options(
    parameters: Mapping[str, Any], folder: str, array_size: int, num_tasks: int
) -> list[str]:
    """The sbatch arguments of a submission (each option its own item), without the script.

    Parameters
    ----------
    parameters
        The executor's parameters (Slurm's names, see :mod:`.parameters`).
    folder
        The job folder template (``%j`` allowed).
    array_size
        Number of array elements, 0 for a single job.
    num_tasks
        Tasks of each job (``nodes * ntasks_per_node``).
    """
    array = array_size > 0
    options = ["--parsable", "--hold", "--requeue", "--open-mode=append"]
    options.append(f"--job-name={parameters.get('job_name') or 'job'}")
    options.append(f"--output={output_pattern(folder, array, 0, 'out')}")
    if not parameters.get("stderr_to_stdout"):
        options.append(f"--error={output_pattern(folder, array, 0, 'err')}")
    time = parameters.get("time")
    limit = limit_minutes(time)
    minutes = time_limit_minutes(limit)
    if minutes is not None:
        options.append(f"--time={minutes}")
    elif time is not None:
        options.append("--time=UNLIMITED")
    wanted = parameters.get("signal_delay_s")
    delay = signal_delay(DEFAULT_SIGNAL_DELAY_S if wanted is None else wanted, limit)
    if delay > 0:
        where = "" if uses_srun(num_tasks, parameters.get("use_srun")) else "B:"
        options.append(f"--signal={where}USR2@{delay}")
    for name in ("nodes", "ntasks_per_node", "cpus_per_task", "gpus_per_node"):
        if parameters.get(name):
            options.append(f"--{flag_name(name)}={int(parameters[name])}")
    if parameters.get("mem") is not None:
        options.append(f"--mem={parameters['mem']}")
    for name in _PLAIN_FLAGS:
        if parameters.get(name) is not None:
            options.append(f"--{flag_name(name)}={parameters[name]}")
    exclusive = parameters.get("exclusive")
    if exclusive is True:
        options.append("--exclusive")
    elif isinstance(exclusive, str):
        options.append(f"--exclusive={exclusive}")
    for key, value in (parameters.get("additional_parameters") or {}).items():
        if value is True:
            options.append(f"--{flag_name(key)}")
        elif value is not None and value is not False:
            options.append(f"--{flag_name(key)}={value}")
    if array:
        parallelism = parameters.get("array_parallelism")
        limit_text = f"%{int(parallelism)}" if parallelism else ""
        options.append(f"--array=0-{array_size - 1}{limit_text}")
    return options


def batch_script(
    options: list[str],
    parameters: Mapping[str, Any],
    folder: str,
    python: str,
    array: bool,
    num_tasks: int,
) -> str:
    """The batch script (fed to sbatch on stdin); its header shows the sbatch command line."""
    command = [python, "-u", "-m", ENTRY_MODULE, folder]
    lines = [
        "#!/bin/bash",
        "# Batch script of jupyter_slurm_ckpt. Submitted with its options as separate sbatch",
        "# arguments (no #SBATCH lines are read from this file):",
        f"#   sbatch {shlex.join(options)}",
        "umask 077  # the job's files are private, like the job folder",
    ]
    setup = parameters.get("setup") or ()
    if setup:
        lines.append("# setup lines (--setup / slurm_setup): user shell, run as written")
        lines.extend(setup)
    lines.append("# USR2 is the checkpoint signal: ignored until the worker installs its handler")
    lines.append("trap '' USR2")
    srun = uses_srun(num_tasks, parameters.get("use_srun"))
    if srun:
        # One step of all tasks; each task logs to its own files (%t: the task's rank).
        output = output_pattern(folder, array, "%t", "out")
        step = ["srun", "--unbuffered", "--open-mode=append", "--kill-on-bad-exit=1"]
        step.append(f"--output={output}")
        if parameters.get("cpus_per_task"):
            step.append(f"--cpus-per-task={int(parameters['cpus_per_task'])}")
        if not parameters.get("stderr_to_stdout"):
            step.append(f"--error={output_pattern(folder, array, '%t', 'err')}")
        # Each task starts with USR2 ignored, as the single worker does (see the module doc):
        # an early signal is dropped rather than killing it; "$0" "$@" is the argv, unparsed.
        ignore = ["/bin/sh", "-c", 'trap "" USR2; exec "$0" "$@"']
        command = step + list(parameters.get("srun_args") or ()) + ignore + command
    teardown = parameters.get("teardown") or ()
    if not teardown:
        lines.append("exec " + shlex.join(command))
        return "\n".join(lines) + "\n"
    lines.append(shlex.join(command) + " &")
    lines.append("worker=$!")
    if not srun:  # the time-limit warning and SIGTERM come to this shell alone: pass them on
        lines.append("trap 'kill -USR2 \"$worker\" 2>/dev/null' USR2")
        lines.append("trap 'kill -TERM \"$worker\" 2>/dev/null' TERM  # teardown runs after")
    else:  # srun's tasks get Slurm's SIGTERM themselves
        lines.append("trap '' TERM  # a requeue, scancel or the time limit: teardown runs after")
    lines.extend(
        [
            "while :; do",
            '    wait "$worker"; status=$?',
            '    kill -0 "$worker" 2>/dev/null || break  # else a trap interrupted the wait',
            "done",
        ]
    )
    lines.append("# teardown lines (slurm_teardown): user shell, run as written")
    lines.extend(teardown)
    lines.append('exit "$status"')
    return "\n".join(lines) + "\n"
