"""What the backend reads from Slurm's commands and writes for them, on text Slurm printed.

The samples are copied from this machine's Slurm 22.05 (sacct -D across a requeue, a pending
array part, squeue -r, the facts of a job as our squeue prints them).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from jupyter_slurm_ckpt.backends.slurm import commands
from jupyter_slurm_ckpt.backends.slurm import script as slurm_script
from jupyter_slurm_ckpt.backends.slurm.records import (
    expand_array_range,
    parse_sacct,
    parse_squeue,
)
from jupyter_slurm_ckpt.backends.slurm.signals import classify_signal, classify_termination
from jupyter_slurm_ckpt.core.runtime import Termination

pytestmark = pytest.mark.slurm

SACCT = """\
13_0|RUNNING|None|vm|0:0
13_1|REQUEUED|None|vm|0:0
13_2|RUNNING|None|vm|0:0
13_1|PENDING|BeginTime|None assigned|0:0
8_[2-4%2]|PENDING|JobArrayTaskLimit|None assigned|0:0
8_2|RUNNING|None|vm|0:0
12|CANCELLED by 0|JobHeldUser|None assigned|0:0
"""


def test_sacct_rows_runs_and_array_parts() -> None:
    records = parse_sacct(SACCT)
    assert records["13_1"].state == "PENDING" and records["13_1"].reason == "BeginTime"
    assert records["13_1"].restarts == 1 and records["13_0"].restarts == 0
    assert records["13_1"].node == ""
    assert records["8_2"].state == "RUNNING"  # its own row beats the pending part's
    assert records["8_3"].state == "PENDING" and records["8_4"].reason == "JobArrayTaskLimit"
    assert records["8_3"].restarts is None
    assert records["12"].state == "CANCELLED"


def test_squeue_and_ranges() -> None:
    records = parse_squeue("2_1|RUNNING|None|vm\n2_[2-3]|PENDING|Resources|\n")
    assert records["2_1"].state == "RUNNING" and records["2_3"].reason == "Resources"
    assert expand_array_range("5_[0-2,7,9-10%3]") == ["5_0", "5_1", "5_2", "5_7", "5_9", "5_10"]
    assert expand_array_range("5_3") == ["5_3"]


def test_why_a_warning_came() -> None:
    now = 1_800_000_000.0
    preempted = {"EndTime": str(int(now) + 5), "PreemptTime": str(int(now))}
    assert classify_signal(preempted, 90, now, None) == "preemption"  # though EndTime is near
    near_end = {"EndTime": str(int(now) + 13), "PreemptTime": "N/A"}
    assert classify_signal(near_end, 60, now, None) == "timeout"
    far = {"EndTime": str(int(now) + 3600), "PreemptTime": "N/A"}
    assert classify_signal(far, 60, now, None) == "preemption"
    assert classify_signal({"EndTime": "Unknown"}, 60, now, None) == "preemption"
    # Slurm does not answer: the end of the limit the run knew when it started tells.
    assert classify_signal(None, 60, now, None) == "preemption"
    assert classify_signal(None, 60, now, now + 13) == "timeout"
    assert classify_signal(None, 60, now, now + 3600) == "preemption"
    # Slurm's own format (a call that did not set ours) still reads.
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now + 13))
    assert classify_signal({"EndTime": local, "PreemptTime": "None"}, 60, now, None) == "timeout"


def test_why_a_sigterm_came() -> None:
    now = 1_800_000_000.0
    ending = {"JobState": "COMPLETING", "Reason": "None", "Restarts": "0", "PreemptTime": "N/A"}
    assert classify_termination(ending, 0, now, None) == Termination("cancelled")
    limit = {**ending, "Reason": "TimeLimit"}
    assert classify_termination(limit, 0, now, None) == Termination("timeout")
    requeued = {**ending, "Restarts": "2", "PreemptTime": str(int(now))}
    assert classify_termination(requeued, 1, now, None) == Termination("preemption", True)
    preempted = {**ending, "PreemptTime": str(int(now))}
    assert classify_termination(preempted, 0, now, None) == Termination("preemption")
    running = {**ending, "JobState": "RUNNING"}  # not Slurm ending the job (srun, a user)
    assert classify_termination(running, 0, now, None).reason == "unknown"
    assert classify_termination(None, 0, now, None).reason == "unknown"  # no answer
    assert classify_termination(None, 0, now, now + 2).reason == "timeout"  # at the limit
    assert classify_termination(None, 0, now, now + 600).reason == "unknown"


def test_facts_come_from_fields_slurm_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    # squeue prints only the fields asked for, each ended by "|": a job's name or comment
    # (where "Reason=TimeLimit" could be written) is not among them.
    printed = {"stdout": "RUNNING|None|0|N/A|1800000090|768|4294901495|\n"}
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        assert options["env"]["SLURM_TIME_FORMAT"] == commands.TIME_FORMAT
        return subprocess.CompletedProcess(argv, 0, printed["stdout"], "")

    monkeypatch.setattr(commands, "run_command", fake_run)
    assert commands.job_facts("7") == {
        "JobState": "RUNNING", "Reason": "None", "Restarts": "0", "PreemptTime": "N/A",
        "EndTime": "1800000090", "ExitCode": "3:0",  # squeue < 24.11 prints the wait status
        "Priority": "4294901495",
    }
    assert "--jobs=7" in seen[0] and not any("Name" in item for item in seen[0])
    printed["stdout"] = ""  # a job Slurm no longer knows
    assert commands.job_facts("7") is None
    assert commands.exit_code_text("9") == "0:9" and commands.exit_code_text("1:0") == "1:0"


def test_srun_gets_the_cpus_of_each_task_and_ends_every_task_together() -> None:
    parameters = {"nodes": 2, "cpus_per_task": 4}
    options = slurm_script.sbatch_options(parameters, "/jobs", 0, 2)
    script = slurm_script.batch_script(options, parameters, "/jobs", "python", False, 2)
    srun = next(line for line in script.splitlines() if line.startswith("exec srun"))
    # srun 22.05/23.02 reads SRUN_CPUS_PER_TASK, not what sbatch exports: said explicitly.
    assert "--cpus-per-task=4" in srun.split() and "--kill-on-bad-exit=1" in srun.split()


def test_a_batch_shell_with_teardown_passes_sigterm_on() -> None:
    # Under proctrack/cgroup Slurm's SIGTERM reaches only the batch shell.
    parameters = {"teardown": ["echo bye"]}
    options = slurm_script.sbatch_options(parameters, "/jobs", 0, 1)
    script = slurm_script.batch_script(options, parameters, "/jobs", "python", False, 1)
    assert "trap 'kill -TERM \"$worker\" 2>/dev/null' TERM" in script
    assert "trap '' TERM" not in script


def test_limits_and_warning_delay() -> None:
    assert slurm_script.time_limit_minutes(0.5) == 1
    assert slurm_script.time_limit_minutes(2.0) == 2
    assert slurm_script.time_limit_minutes(2.01) == 3
    assert slurm_script.signal_delay(90, 1) == 30  # half of a one-minute limit
    assert slurm_script.signal_delay(90, 10) == 90
    assert slurm_script.signal_delay(90, None) == 90
    assert slurm_script.signal_delay(10**6, None) == 65535


def test_output_patterns() -> None:
    assert slurm_script.output_pattern("/f", False, 0, "out") == "/f/%j_0_log.out"
    assert slurm_script.output_pattern("/f", True, 0, "err") == "/f/%A_%a_0_log.err"
    assert slurm_script.output_pattern("/f/%j", True, "%t", "out") == "/f/%A_%a/%A_%a_%t_log.out"
    assert slurm_script.output_pattern("/50%x", False, 0, "out") == "/50%%x/%j_0_log.out"
    assert slurm_script.output_pattern("/f/%A-%a", False, 0, "out") == "/f/%j-0/%j_0_log.out"


def test_options_are_argv_items() -> None:
    options = slurm_script.sbatch_options(
        {"job_name": "a b", "time": 5, "additional_parameters": {"mail_type": "END",
                                                                    "exclusive": True,
                                                                    "comment": None}},
        "/jobs", 3, 1,
    )
    assert "--job-name=a b" in options and "--mail-type=END" in options
    assert "--exclusive" in options and not any(o.startswith("--comment") for o in options)
    assert "--array=0-2" in options and "--signal=B:USR2@90" in options
    assert options[:2] == ["--parsable", "--hold"]
    quiet = slurm_script.sbatch_options({"signal_delay_s": 0}, "/jobs", 0, 1)
    assert not any(option.startswith("--signal") for option in quiet)  # 0: no warning
