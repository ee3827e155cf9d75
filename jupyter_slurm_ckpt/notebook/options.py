"""The ``%%slurm`` options: their config defaults, their parsing, and the executor they build.

One table (:data:`OPTIONS`) names every option; the argparse declarations (what ``%%slurm?``
prints) and the mapping to executor parameters are both derived from it, and the defaults are
the traits of :class:`SlurmConfig` (``%config SlurmMagics.partition = "gpu"``). Nothing here
imports the executor backends until an executor is built, and nothing touches the disk.

What is refused here, for every cluster, before a backend is touched:

- An option given twice (``--timeout 5 --timeout 10``): which one was meant is a guess.
- Numbers out of range, below (``--nodes 0``) and above (:data:`MAXIMA`: values no scheduler
  takes, typos such as ``--timeout 1e300``).
- Control characters (newline, carriage return, tab, escape, NUL...) in any text option.
- Values that become sbatch options (``--sbatch KEY=VALUE``, ``--name``, ``--partition``):
  ``#SBATCH`` anywhere, and the shell characters ``;``, ``$`` and backquote. The backend passes
  each option to ``sbatch`` as one argv item, never through a shell, and the batch script shows
  them only in a ``shlex``-quoted comment, so these would be inert data there; they are refused
  anyway because no sbatch option needs them and Slurm hands some values (job name, comment) to
  site scripts (prolog, epilog, mail) we do not control. Slurm's own syntax stays accepted and
  inert: ``&``, ``|``, ``!``, ``*``, ``?``, ``[]``, ``,``, ``:``, quotes and spaces
  (``--sbatch constraint="a100&ib|h100"``). ``--setup`` lines are shell by design.
- The same checks apply to the config traits' text values (``%config SlurmMagics.sbatch``).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import math
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode

from ..backends.auto import AutoExecutor, pick_cluster
from ..core.parameters import CONTROL_CHARACTERS
from ..core.payload import MB
from ..views.polling import SchedulerPolling

CLUSTER_CHOICES = ("auto", "slurm", "local", "debug")


class OptionError(ValueError):
    """A bad option or option value (shown to the user as a one-line ``UsageError``)."""


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


# -- argument value types (argparse turns their errors into "argument --x: <message>") -----


def _number(
    kind: type, minimum: float, strict: bool, maximum: float = 2**31 - 1
) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, not {text}")
        if value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {text}")
        if value > maximum:
            shown = int(maximum) if float(maximum).is_integer() else maximum
            raise argparse.ArgumentTypeError(f"must be <= {shown}, not {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


#: Upper bounds of the numeric options (the others: 2**31 - 1, Slurm's 32-bit counts).
MAXIMA = {
    "timeout": 365 * 24 * 60.0,  # minutes: a limit over a year is a typo
    "mem_gb": 2.0**20,  # 1 PiB per node
    "signal_delay_s": 65535.0,  # Slurm's largest --signal offset
    "max_num_timeout": 10_000,
    "verify_checkpoint": 1_000,  # each interrupt is a real requeue
}

_SBATCH_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


_SBATCH_DIRECTIVE = re.compile(r"#\s*SBATCH", re.IGNORECASE)
_SHELL_CHARACTERS = (";", "$", "`")


def _one_line(text: str) -> str:
    if not text.strip() or CONTROL_CHARACTERS.search(text):
        raise argparse.ArgumentTypeError(
            f"expected a non-empty single line without control characters, not {text!r}"
        )
    return text


def sbatch_value(text: str) -> str:
    """A value that becomes an sbatch option (see the module docstring for the policy)."""
    _one_line(text)
    if _SBATCH_DIRECTIVE.search(text):
        raise argparse.ArgumentTypeError(f"#SBATCH is not allowed in a value, not {text!r}")
    found = [char for char in _SHELL_CHARACTERS if char in text]
    if found:
        raise argparse.ArgumentTypeError(
            f"{' '.join(found)} not allowed (no sbatch option needs shell syntax), not {text!r}"
        )
    return text


def sbatch_pair(text: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE`` (``--sbatch account=abc``); the key is normalised to underscores."""
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not _SBATCH_KEY.match(key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. account=abc), not {text!r}")
    return key.replace("-", "_"), sbatch_value(value)


def module_name(text: str) -> str:
    """A dotted module name (``--by-value mylib.utils``)."""
    if not _MODULE_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a module name")
    return text


def _cluster(text: str) -> str:
    if text not in CLUSTER_CHOICES:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(CLUSTER_CHOICES)}, not {text!r}"
        )
    return text


@dataclass(frozen=True)
class Option:
    """One ``%%slurm`` option: its flag, the trait holding its default, how to parse it."""

    flag: str
    trait: str
    convert: Callable[[str], Any] | None  # None: a flag without value
    metavar: str = ""
    repeat: bool = False
    help: str = ""  # default: the trait's help


OPTIONS: tuple[Option, ...] = (
    Option("--timeout", "timeout", _number(float, 0, True, MAXIMA["timeout"]), "MIN"),
    Option("--partition", "partition", sbatch_value, "P"),
    Option("--gpus-per-node", "gpus_per_node", _number(int, 0, False), "N"),
    Option("--cpus-per-task", "cpus_per_task", _number(int, 1, False), "N"),
    Option("--mem-gb", "mem_gb", _number(float, 0, True, MAXIMA["mem_gb"]), "G"),
    Option("--nodes", "nodes", _number(int, 1, False), "N"),
    Option("--tasks-per-node", "tasks_per_node", _number(int, 1, False), "N"),
    Option("--name", "name", sbatch_value, "NAME"),
    Option(
        "--max-num-timeout",
        "max_num_timeout",
        _number(int, 0, False, MAXIMA["max_num_timeout"]),
        "N",
    ),
    Option(
        "--signal-delay-s",
        "signal_delay_s",
        _number(float, 0, False, MAXIMA["signal_delay_s"]),
        "S",
    ),
    Option("--cluster", "cluster", _cluster, "NAME"),
    Option("--folder", "folder", _one_line, "DIR"),
    Option("--setup", "setup", _one_line, "CMD", repeat=True),
    Option("--sbatch", "sbatch", sbatch_pair, "KEY=VALUE", repeat=True),
    Option("--by-value", "by_value", module_name, "MODULE", repeat=True),
    Option("--no-widget", "widget", None, help="Do not display the live job widget."),
    Option("--dry-run", "dry_run", None, help="Show what would be submitted; submit nothing."),
    Option(
        "--verify-checkpoint",
        "verify_checkpoint",
        _number(int, 1, False, MAXIMA["verify_checkpoint"]),
        "N",
        help="Run the call once uninterrupted and once with N simulated interrupts; "
        "compare the results.",
    ),
)

_BY_FLAG = {option.flag: option for option in OPTIONS}


def _dest(option: Option) -> str:
    return option.flag[2:].replace("-", "_")


class _Once(argparse.Action):
    """``store`` (``store_true`` with ``nargs=0``) that refuses a second occurrence of the
    option: which of two values was meant would be a guess."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        seen = getattr(namespace, self.dest, None)
        if seen is not None and seen is not False:  # identity: a first value of 0 counts
            raise argparse.ArgumentError(self, "given more than once; give it once")
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def add_arguments(func: Any) -> Any:
    """Declare every option on a magic with ``IPython.core.magic_arguments`` (for ``%%slurm?``).

    Defaults stay ``None`` in argparse: :func:`resolve` falls back to the config traits, so
    ``%config`` changes apply to the next cell.
    """
    from IPython.core.magic_arguments import argument, magic_arguments

    traits = SlurmConfig.class_traits()
    for option in reversed(OPTIONS):  # decorators apply bottom-up; keep the table's order
        trait = traits.get(option.trait)
        text = option.help or (trait.help if trait is not None else "")
        if trait is not None and option.convert is not None:
            text += f" [config: SlurmMagics.{option.trait}]"
        if option.convert is None:
            func = argument(option.flag, action=_Once, nargs=0, default=False, help=text)(func)
        else:
            func = argument(
                option.flag,
                type=option.convert,
                metavar=option.metavar,
                action="append" if option.repeat else _Once,
                dest=_dest(option),
                help=text,
            )(func)
    func = magic_arguments()(func)
    func.parser.allow_abbrev = False  # a typo is an error, not a guess
    return func


def parse_line(func: Any, line: str) -> argparse.Namespace:
    """Parse a magic's option line with shell quoting (``--name "my job"`` gives ``my job``).

    IPython's own ``parse_argstring`` keeps the quotes on POSIX; argparse errors still come
    out as ``UsageError`` from the magic's parser.
    """
    try:
        argv = shlex.split(line, comments=True)  # `%%slurm --timeout 5  # why` is fine
    except ValueError as error:  # an unclosed quote
        raise OptionError(f"cannot read the options: {error}") from None
    namespace: argparse.Namespace = func.parser.parse_args(argv)
    return namespace


def split_statement(line: str) -> tuple[str, str]:
    """Split the line form ``%slurm OPTIONS STATEMENT`` into its options and its statement.

    Options are read as shell words (so ``--name "my job"`` works); the statement is returned
    verbatim from the first word that is not an option, never passed through a shell lexer.
    """
    position = 0
    while True:
        while position < len(line) and line[position].isspace():
            position += 1
        if position >= len(line) or line[position] != "-":
            return line[:position].strip(), line[position:].strip()
        flag, position = _shell_word(line, position)
        option = _BY_FLAG.get(flag.partition("=")[0])
        if option is not None and option.convert is not None and "=" not in flag:
            _, position = _shell_word(line, position)


def _shell_word(line: str, position: int) -> tuple[str, int]:
    stream = io.StringIO(line[position:])
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        word = lexer.get_token()
    except ValueError as error:  # an unclosed quote
        raise OptionError(f"cannot read the options: {error}") from None
    return word or "", position + stream.tell()


@dataclass
class SubmitOptions:
    """The options of one ``%%slurm`` run, defaults filled in and checked."""

    cluster: str
    requested_cluster: str
    folder: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    max_num_timeout: int = 3
    by_value: tuple[str, ...] = ()
    widget: bool = True
    dry_run: bool = False
    verify_checkpoint: int | None = None
    max_payload_bytes: int = 100 * MB
    warn_global_bytes: int = 10 * MB
    ignored: tuple[str, ...] = ()  # Slurm-only options the chosen backend does not use


# Options that become executor parameters: trait -> parameter name ("{c}": the cluster).
_PARAMETERS = {
    "timeout": "timeout_min",
    "mem_gb": "mem_gb",
    "nodes": "nodes",
    "cpus_per_task": "cpus_per_task",
    "gpus_per_node": "gpus_per_node",
    "tasks_per_node": "tasks_per_node",
    "name": "name",
    "signal_delay_s": "{c}_signal_delay_s",
    "partition": "slurm_partition",
    "setup": "{c}_setup",
    "sbatch": "slurm_additional_parameters",
}
_SLURM_ONLY = ("partition", "sbatch")
# Shell lines run before the job: Slurm's batch script and the local backend run them; the
# debug backend runs the job inside this very process.
_NOT_IN_DEBUG = ("setup",)


def resolve(args: argparse.Namespace, config: SlurmConfig) -> SubmitOptions:
    """Merge parsed arguments over the config defaults and check what needs the environment.

    Raises
    ------
    OptionError
        ``--cluster slurm`` without ``sbatch``, a ``--by-value`` module that cannot be found,
        or a bad config value.
    """
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given = getattr(args, _dest(option), None)
        if given is None or option.repeat:  # the config value is used
            _check_config_text(option, getattr(config, option.trait, None))
        if option.trait == "widget":
            values["widget"] = config.widget and not given
        elif option.trait in ("dry_run", "verify_checkpoint"):
            values[option.trait] = given or (None if option.convert else False)
        elif option.trait == "sbatch":
            values["sbatch"] = {**config.sbatch, **dict(given or [])}
        elif option.repeat:
            values[option.trait] = [*getattr(config, option.trait), *(given or [])]
        else:
            values[option.trait] = given if given is not None else getattr(config, option.trait)
    requested = values["cluster"]
    try:
        cluster = pick_cluster(requested)
    except ValueError as error:
        raise OptionError(str(error)) from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise OptionError(
            "--cluster slurm: sbatch is not on PATH (no Slurm client here); "
            "use --cluster local or --cluster auto"
        )
    for module in values["by_value"]:
        _check_module(module)
    if not str(values["folder"]).strip():
        raise OptionError("--folder must not be empty")
    parameters: dict[str, Any] = {}
    ignored = []
    for trait, parameter in _PARAMETERS.items():
        value = values[trait]
        if value is None or value == [] or value == {}:
            continue
        if (trait in _SLURM_ONLY and cluster != "slurm") or (
            trait in _NOT_IN_DEBUG and cluster == "debug"
        ):
            ignored.append(f"--{trait.replace('_', '-')}")
            continue
        parameters[parameter.format(c=cluster)] = value
    return SubmitOptions(
        cluster=cluster,
        requested_cluster=requested,
        folder=Path(values["folder"]).expanduser(),
        parameters=parameters,
        max_num_timeout=int(values["max_num_timeout"]),
        by_value=tuple(dict.fromkeys(values["by_value"])),
        widget=bool(values["widget"]),
        dry_run=bool(values["dry_run"]),
        verify_checkpoint=values["verify_checkpoint"],
        max_payload_bytes=int(config.max_payload_mb * MB),
        warn_global_bytes=int(config.warn_global_mb * MB),
        ignored=tuple(ignored),
    )


def _check_config_text(option: Option, value: Any) -> None:
    """Put a config trait's text values through the option's own check (numbers are checked
    by the executor's parameters)."""
    if option.convert is None or value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, dict):
        items = [f"{key}={item}" for key, item in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [str(item) for item in value]
    else:
        items = [str(value)]
    for item in items:
        try:
            option.convert(item)
        except argparse.ArgumentTypeError as error:
            raise OptionError(f"SlurmMagics.{option.trait}: {error}") from None


def _check_module(name: str) -> None:
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError) as error:
        raise OptionError(f"--by-value {name}: cannot import it ({error})") from None
    if found is None:
        raise OptionError(f"--by-value {name}: no module named {name!r} on sys.path")


def build_executor(options: SubmitOptions) -> AutoExecutor:
    """The executor for these options, parameters set; touches no file.

    Raises
    ------
    OptionError
        When the backend refuses a parameter (its message names it).
    """
    max_timeouts = {f"{options.cluster}_max_num_timeout": options.max_num_timeout}
    try:
        executor = AutoExecutor(options.folder, cluster=options.cluster, **max_timeouts)
        executor.update_parameters(**options.parameters)
    except ValueError as error:
        raise OptionError(str(error)) from None
    # The magic refuses oversized payloads itself (with a diagnosis); the core's own limit
    # must not be the stricter one.
    limit_gb = options.max_payload_bytes / 1024**3
    executor.executor.max_pickle_size_gb = max(executor.executor.max_pickle_size_gb, limit_gb)
    return executor


def set_default_name(executor: AutoExecutor, name: str) -> None:
    """Name the job after its callable unless ``--name`` was given."""
    own = executor.executor.aliases.get("name", "name")  # Slurm calls it job_name
    if executor.parameters.get(own) is None and name:
        executor.update_parameters(name=name)
