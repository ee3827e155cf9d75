"""``whole_step()``: the checkpoint and termination signals wait for the end of the block.

Real signals sent to this process (``os.kill``); the handler is a recorder installed as the
worker installs its own. A real job checkpointing torch training inside ``whole_step`` is in
``notebooks/06_pytorch_checkpoints.ipynb`` (tests/test_notebooks.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from jupyter_slurm_ckpt.helpers import whole_step


@pytest.fixture
def received() -> Iterator[list[int]]:
    """Signals USR2 and TERM as the handlers installed here receive them."""
    seen: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = {s: signal.signal(s, record) for s in (signal.SIGUSR2, signal.SIGTERM)}
    yield seen
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_a_signal_inside_the_block_is_handled_when_it_ends(received: list[int]) -> None:
    with whole_step():
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # bytecodes run: a handler would have run by now
        assert received == []
    assert received == [signal.SIGUSR2, signal.SIGTERM]
    os.kill(os.getpid(), signal.SIGUSR2)  # outside: at once, by the same handler
    sum(range(1000))
    assert received == [signal.SIGUSR2, signal.SIGTERM, signal.SIGUSR2]


def test_nested_blocks_hold_until_the_outermost_ends(received: list[int]) -> None:
    with whole_step():
        with whole_step():
            os.kill(os.getpid(), signal.SIGUSR2)
        sum(range(1000))
        assert received == []
    assert received == [signal.SIGUSR2]


def test_an_exception_in_the_block_still_delivers_the_signal(received: list[int]) -> None:
    with pytest.raises(ZeroDivisionError), whole_step():
        os.kill(os.getpid(), signal.SIGUSR2)
        1 / 0  # noqa: B018
    assert received == [signal.SIGUSR2]


def test_outside_the_main_thread_it_holds_nothing(received: list[int]) -> None:
    errors: list[BaseException] = []

    def step() -> None:
        try:
            with whole_step():
                pass
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=step)
    thread.start()
    thread.join()
    assert errors == []


def test_a_default_action_comes_after_the_block() -> None:
    # Outside a job TERM has its default action: the process ends, but after the step.
    script = (
        "import os, signal, sys\n"
        "from jupyter_slurm_ckpt.helpers import whole_step\n"
        "with whole_step():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    print('step done', flush=True)\n"
        "print('never here', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGTERM
    assert done.stdout == "step done\n"
