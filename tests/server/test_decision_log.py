"""Decision logs are sampled through the injected randomness (ServerDeps.entropy), which is
asked only when a sampling rate is set."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sidecar.engine.engine import Engine
from sidecar.server.metrics import Metrics
from sidecar.server.servicers import ServerDeps, Services
from sidecar.sts.assume import StsEnv
from sidecar.sts.keys import KeyRing
from tests.engine.test_authorize import REPORT, token_for
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.conftest import START
from tests.sts.world import demo_world


class Draws(CountingEntropy):
    """Hands out the given random() values in turn and counts the draws."""

    def __init__(self, *values: float) -> None:
        super().__init__(7)
        self.values = list(values)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return self.values.pop(0)


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    handler = Kept()
    log = logging.getLogger("iam_sidecar.decisions")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.records
    log.removeHandler(handler)
    log.setLevel(level)


def decide(entropy: Draws, rate: float, times: int) -> None:
    clock = FixedClock(START)
    env = StsEnv(demo_world(), KeyRing.generate(CountingEntropy(1)), clock, CountingEntropy(100))
    token = token_for(env)
    deps = ServerDeps(Engine(env.world, env.keys, clock), clock, entropy, Metrics(), rate)
    services = Services(deps)
    for _ in range(times):
        services._decide(token, "s3:GetObject", REPORT, [], {})


def test_a_draw_below_the_rate_logs(logged: list[logging.LogRecord]) -> None:
    entropy = Draws(0.0, 0.2, 0.9)
    decide(entropy, 0.25, 3)
    assert entropy.draws == 3
    assert [r.getMessage() for r in logged] == ["decision", "decision"]
    assert [r.__dict__["cached"] for r in logged] == [False, True]


def test_no_rate_draws_nothing(logged: list[logging.LogRecord]) -> None:
    entropy = Draws()
    decide(entropy, 0.0, 3)
    assert (entropy.draws, logged) == (0, [])


def test_rate_one_logs_all_without_drawing(logged: list[logging.LogRecord]) -> None:
    entropy = Draws()
    decide(entropy, 1.0, 3)
    assert (entropy.draws, len(logged)) == (0, 3)
