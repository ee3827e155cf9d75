"""A sample of the kill-anywhere fault injection (benchmarks/kill_anywhere.py runs 200+)."""

from __future__ import annotations

from pathlib import Path

from . import full_disk, kill_anywhere


def test_sigkill_at_random_moments_leaves_only_complete_files(tmp_path: Path) -> None:
    audits = kill_anywhere.run_trials(tmp_path, trials=12, seed=1)
    corrupt = [(a.kill_after_s, a.corrupt) for a in audits if a.corrupt]
    assert corrupt == []
    assert sum(a.leftover_temporaries for a in audits) == 0
    assert all(a.files_checked >= 3 for a in audits)
    not_resumed = [a for a in audits if not a.resumed_ok]
    assert not_resumed == []
    # The sample did interrupt work in progress (not only before the first checkpoint).
    assert any((a.checkpoint_count or 0) > 0 for a in audits)
    # Killed while the disk was full too (as root: the trials mount a small filesystem), and
    # once there was room again, no event was lost.
    assert sum(a.lost_events for a in audits) == 0
    if full_disk.can_mount():
        assert any(a.mode == "full" for a in audits)
