"""Kill-anywhere fault injection at scale: SIGKILL local jobs at random moments, audit folders.

``.venv/bin/python benchmarks/kill_anywhere.py --trials 200`` prints the trial count (by mode:
``full`` kills jobs while their disk is full, on a small tmpfs mounted per trial, so as root),
the files audited, the corrupt files and the lost events found (the goal is zero for both) and
how many jobs resumed from their last complete checkpoint. The trial itself lives in
``tests/reliability/kill_anywhere.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cloudpickle

from tests.reliability import kill_anywhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cloudpickle.register_pickle_by_value(kill_anywhere)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jsc-kill-") as root:
        audits = kill_anywhere.run_trials(Path(root), args.trials, args.seed)
    corrupt = [name for audit in audits for name in audit.corrupt]
    modes = Counter(audit.mode for audit in audits)
    print(f"trials:                      {len(audits)} ({dict(sorted(modes.items()))})")
    print(f"files audited:               {sum(a.files_checked for a in audits)}")
    print(f"corrupt files:               {len(corrupt)} {corrupt[:5]}")
    print(f"lost events:                 {sum(a.lost_events for a in audits)}")
    print(
        f"hidden temporaries left:     {sum(a.leftover_temporaries for a in audits)}"
        " (after the dead job was looked at once)"
    )
    print(f"killed after >=1 checkpoint: {sum(1 for a in audits if (a.checkpoint_count or 0) > 0)}")
    print(f"resumed from last checkpoint: {sum(a.resumed_ok for a in audits)}/{len(audits)}")
    for audit in [a for a in audits if a.resume_error][:3]:
        print(f"  not resumed ({audit.mode}): {audit.resume_error}")
    print(f"wall time:                   {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
