"""The `--workers` supervisor's pure parts: the restart backoff and how an exit is described
(the processes themselves are tested in tests/server/process/test_supervisor.py)."""

from __future__ import annotations

import os
import signal

import pytest

from sidecar.server.supervisor import (
    MAX_DELAY,
    MIN_DELAY,
    STABLE_AFTER,
    describe_exit,
    restart_delay,
)


def test_fast_deaths_back_off_exponentially_up_to_the_cap() -> None:
    """Deaths in quick succession wait 0.1 s, then twice as long each time, never over 30 s."""
    delays = []
    delay = 0.0
    for _ in range(12):
        delay = restart_delay(delay, lifetime=0.5)
        delays.append(delay)
    assert delays == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]
    )
    assert (MIN_DELAY, MAX_DELAY) == (0.1, 30.0)


def test_a_worker_that_lived_a_while_resets_the_backoff() -> None:
    """A worker that lived STABLE_AFTER seconds is replaced at once, and the next fast death
    starts again from the minimum."""
    assert STABLE_AFTER == 10.0
    assert restart_delay(MAX_DELAY, lifetime=STABLE_AFTER) == 0.0
    assert restart_delay(25.6, lifetime=3600) == 0.0
    assert restart_delay(0.0, lifetime=STABLE_AFTER - 0.01) == MIN_DELAY
    assert restart_delay(restart_delay(MAX_DELAY, lifetime=60), lifetime=1) == MIN_DELAY


def test_exit_descriptions_name_the_signal_or_the_code() -> None:
    """A wait status becomes the metric's cause and the log fields (signal name or exit code)."""
    killed = os.waitstatus_to_exitcode(signal.SIGKILL)  # a wait status for "killed by SIGKILL"
    assert describe_exit(killed) == ("signal", {"signal": "SIGKILL"})
    assert describe_exit(-signal.SIGSEGV) == ("signal", {"signal": "SIGSEGV"})
    assert describe_exit(1) == ("exit", {"exit_code": 1})
    assert describe_exit(0) == ("exit", {"exit_code": 0})
