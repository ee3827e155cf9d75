"""options.py: the line form's split, option -> executor parameter mapping, config merging."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from jupyter_slurm_ckpt.notebook.config import SlurmConfig
from jupyter_slurm_ckpt.notebook.options import (
    OPTIONS,
    OptionError,
    add_arguments,
    sbatch_pair,
    split_statement,
)
from jupyter_slurm_ckpt.notebook.resolve import build_executor, resolve


@add_arguments
def parser_holder(line: str) -> None:
    """Stands in for the magic method: only its parser is used."""


def parse(line: str) -> argparse.Namespace:
    namespace: argparse.Namespace = parser_holder.parser.parse_args(line.split())
    return namespace


@pytest.mark.parametrize(
    ("line", "options", "statement"),
    [
        ("job = f(1)", "", "job = f(1)"),
        ("--timeout 5 job = f(1)", "--timeout 5", "job = f(1)"),
        ('--name "a b" --no-widget job = f("x  y", -1)', '--name "a b" --no-widget',
         'job = f("x  y", -1)'),
        ("--timeout=5 --dry-run f(1)", "--timeout=5 --dry-run", "f(1)"),
        ("--setup 'module load x' --sbatch a=b  jobs = [f(x) for x in 'it''s']",
         "--setup 'module load x' --sbatch a=b", "jobs = [f(x) for x in 'it''s']"),
        ("--signal-delay-s -1 f()", "--signal-delay-s -1", "f()"),
        ("--timeout", "--timeout", ""),
        ("", "", ""),
    ],
)
def test_split_statement(line: str, options: str, statement: str) -> None:
    assert split_statement(line) == (options, statement)


def test_split_statement_unclosed_quote() -> None:
    with pytest.raises(OptionError, match="cannot read the options"):
        split_statement("--name 'oops f()")


def test_every_option_of_the_design_is_declared() -> None:
    flags = {option.flag for option in OPTIONS}
    assert flags == {
        "--timeout", "--partition", "--gpus-per-node", "--cpus-per-task", "--mem-gb", "--nodes",
        "--tasks-per-node", "--name", "--max-num-timeout", "--signal-delay-s", "--cluster",
        "--folder", "--setup", "--sbatch", "--by-value", "--no-widget", "--dry-run",
        "--verify-checkpoint",
    }
    assert parser_holder.parser.allow_abbrev is False


def test_mapping_to_slurm_parameters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Only resolve() runs (no executor is built): pretend sbatch exists on machines without it.
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    config = SlurmConfig()
    config.setup = ["module load cuda"]
    config.sbatch = {"account": "lab", "qos": "low"}
    args = parse(
        "--cluster slurm --timeout 30 --partition gpu --gpus-per-node 1 --cpus-per-task 2 "
        "--mem-gb 8 --nodes 2 --tasks-per-node 4 --max-num-timeout 5 --signal-delay-s 60 "
        "--setup source_env --sbatch qos=high --sbatch mail-type=END --folder " + str(tmp_path)
    )
    options = resolve(args, config)
    assert options.cluster == "slurm" and options.max_num_timeout == 5
    assert options.folder == tmp_path and options.ignored == ()
    assert options.parameters == {
        "timeout_min": 30.0,
        "gpus_per_node": 1,
        "cpus_per_task": 2,
        "mem_gb": 8.0,
        "nodes": 2,
        "tasks_per_node": 4,
        "slurm_signal_delay_s": 60.0,
        "slurm_partition": "gpu",
        "slurm_setup": ["module load cuda", "source_env"],
        "slurm_additional_parameters": {"account": "lab", "qos": "high", "mail_type": "END"},
    }


def test_local_ignores_slurm_only_options_and_builds(tmp_path: Path) -> None:
    config = SlurmConfig()
    config.partition = "gpu"
    args = parse(f"--cluster local --timeout 1 --signal-delay-s 5 --sbatch a=b --folder {tmp_path}")
    options = resolve(args, config)
    assert options.ignored == ("--partition", "--sbatch")
    assert options.parameters == {"timeout_min": 1.0, "local_signal_delay_s": 5.0}
    executor = build_executor(options)
    assert executor.cluster == "local"
    assert executor.parameters == {"timeout_min": 1.0, "signal_delay_s": 5.0}
    assert executor.executor.max_num_timeout == 3
    assert not tmp_path.joinpath("slurm_jobs").exists() and list(tmp_path.iterdir()) == []


def test_config_defaults_and_flags() -> None:
    config = SlurmConfig()
    options = resolve(parse("--cluster debug"), config)
    assert options.widget is True and options.dry_run is False
    assert options.max_payload_bytes == 100 * 1024**2
    assert str(options.folder) == "slurm_jobs"
    config.widget = False
    config.max_payload_mb = 2.5
    options = resolve(parse("--cluster debug --dry-run"), config)
    assert options.widget is False and options.dry_run is True
    assert options.max_payload_bytes == int(2.5 * 1024**2)
    assert resolve(parse("--cluster debug --no-widget"), SlurmConfig()).widget is False


def test_sbatch_pairs() -> None:
    assert sbatch_pair("mail-type=END") == ("mail_type", "END")
    assert sbatch_pair("--account=lab") == ("account", "lab")
    assert sbatch_pair("constraint=a100|h100") == ("constraint", "a100|h100")
    for bad in ("account", "=x", "9x=1", "a b=1", "account="):
        with pytest.raises(argparse.ArgumentTypeError):
            sbatch_pair(bad)
