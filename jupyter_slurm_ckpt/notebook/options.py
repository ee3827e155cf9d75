"""The ``%%slurm`` options: one table, the argparse declarations and value checks it gives.

One table (:data:`OPTIONS`) names every option; the argparse declarations (what ``%%slurm?``
prints) and the mapping to executor parameters (``resolve``) are both derived from it, and the
defaults are the traits of ``config.SlurmConfig`` (``%config SlurmMagics.partition = "gpu"``).
Nothing here touches the disk.

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
import io
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.parameters import CONTROL_CHARACTERS
from .config import SlurmConfig, check_cluster


class OptionError(ValueError):
    """A bad option or option value (shown to the user as a one-line ``UsageError``)."""


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
    try:
        return check_cluster(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def check_cluster_option(text: str) -> str:
    """A ``--cluster`` value, checked (``OptionError`` otherwise)."""
    try:
        return check_cluster(text)
    except ValueError as error:
        raise OptionError(f"--cluster: {error}") from None


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


def dest(option: Option) -> str:
    """The name argparse stores an option's value under (``--mem-gb``: ``mem_gb``)."""
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
                dest=dest(option),
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
