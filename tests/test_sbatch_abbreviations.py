"""``--sbatch KEY=VALUE``: abbreviated options are checked as the option sbatch reads them as."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jupyter_slurm_ckpt.backends.slurm.long_options import (
    SBATCH_LONG_OPTIONS,
    resolve_long_option,
)
from jupyter_slurm_ckpt.backends.slurm.script import check_additional_parameters


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("out", "/tmp/x", "--out (sbatch reads it as --output) is set by jupyter_slurm_ckpt"),
        ("sig", "USR1@10", "--sig (sbatch reads it as --signal) is set by jupyter_slurm_ckpt"),
        ("arr", "0-3", "--arr (sbatch reads it as --array) is set by jupyter_slurm_ckpt"),
        ("chd", "/", "--chd (sbatch reads it as --chdir) is set by jupyter_slurm_ckpt"),
        ("no_req", True, "--no-req (sbatch reads it as --no-requeue) is set by"),
        ("exp", "NONE", "--exp is ambiguous (sbatch reads it as one of --export, --export-file)"),
        ("ex", "NONE", "--ex is ambiguous"),
        ("par", "gpu", "--par is ambiguous (sbatch reads it as one of --parsable, --partition)"),
        ("parti", "gpu", "--parti (sbatch reads it as --partition): use the parameter partition"),
        ("job", "x", "--job (sbatch reads it as --job-name): use the parameter name (--name)"),
        ("tim", "5", "--tim is ambiguous (sbatch reads it as one of --time, --time-min)"),
    ],
)
def test_abbreviations_of_reserved_or_named_options_are_refused(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_additional_parameters({key: value})


def test_other_abbreviations_and_unknown_options_pass_as_given() -> None:
    given = {"acco": "lab", "mail_t": "END", "time_min": "5", "some_future_option": "x"}
    assert check_additional_parameters(given) == given
    assert resolve_long_option("acco") == "account"
    assert resolve_long_option("time") == "time"  # exact beats being a prefix of time-min
    assert resolve_long_option("some-future-option") is None


def _sbatch_reads(prefix: str, env: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """What sbatch's getopt makes of ``--prefix=1``: ambiguous (with its candidates),
    unknown, or one option (which one it does not say)."""
    done = subprocess.run(
        ["sbatch", f"--{prefix}=1", os.devnull], env=env, capture_output=True, text=True, timeout=30
    )
    first = (done.stderr.splitlines() or [""])[0]
    if "is ambiguous; possibilities:" in first:
        listed = first.split("possibilities:", 1)[1].split()
        return "ambiguous", tuple(sorted(name.strip("'")[2:] for name in listed))
    if "unrecognized option" in first:
        return "unknown", ()
    return "one", ()


def _ours(prefix: str) -> tuple[str, tuple[str, ...]]:
    try:
        option = resolve_long_option(prefix)
    except ValueError:
        return "ambiguous", tuple(sorted(o for o in SBATCH_LONG_OPTIONS if o.startswith(prefix)))
    return ("unknown", ()) if option is None else ("one", ())


@pytest.mark.slurm  # needs the Slurm client (installed with the cluster)
def test_the_list_resolves_every_prefix_as_the_installed_sbatch_does(tmp_path: Path) -> None:
    version = subprocess.run(["sbatch", "--version"], capture_output=True, text=True).stdout
    assert shutil.which("sbatch") and " 22.05." in version, version  # "slurm-wlm 22.05.8"
    # sbatch parses its options before it needs a controller: a config that names one will do.
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=probe\nSlurmctldHost=localhost\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    prefixes = sorted({name[:end] for name in SBATCH_LONG_OPTIONS for end in range(1, 40)})
    prefixes += ["f", "x", "z", "workdir", "share"]  # no option starts so (or no more exists)
    with ThreadPoolExecutor(4) as pool:
        theirs = dict(zip(prefixes, pool.map(lambda p: _sbatch_reads(p, env), prefixes)))
    differing = {p: (_ours(p), theirs[p]) for p in prefixes if _ours(p) != theirs[p]}
    assert differing == {}
