"""What the backend reads from Slurm's commands and writes for them, on text Slurm printed.

The samples are copied from this machine's Slurm 22.05 (sacct -D across a requeue, a pending
array part, squeue -r, scontrol at a preemption and after ``EndTime=now+...``).
"""

from __future__ import annotations

import pytest

from jupyter_slurm_ckpt.backends.slurm import script as slurm_script
from jupyter_slurm_ckpt.backends.slurm.commands import scontrol_fields
from jupyter_slurm_ckpt.backends.slurm.records import (
    expand_array_range,
    parse_sacct,
    parse_squeue,
)
from jupyter_slurm_ckpt.backends.slurm.signals import classify_signal

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


def test_signal_reason_from_scontrol() -> None:
    now = 1_800_000_000.0

    def at(offset: float) -> str:
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now + offset))

    preempted = scontrol_fields(
        f"JobId=5 JobName=p JobState=RUNNING Reason=None EndTime={at(5)} PreemptTime={at(0)} "
        "Comment=a b=c"
    )
    assert preempted["PreemptTime"] == at(0)
    assert classify_signal(preempted, 90, now) == "preemption"  # though EndTime is near
    near_end = {"EndTime": at(13), "PreemptTime": "None"}
    assert classify_signal(near_end, 60, now) == "timeout"
    far = {"EndTime": at(3600), "PreemptTime": "None"}
    assert classify_signal(far, 60, now) == "preemption"
    assert classify_signal(None, 60, now) == "preemption"
    assert classify_signal({"EndTime": "Unknown"}, 60, now) == "preemption"


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
