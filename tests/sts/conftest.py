from __future__ import annotations

import pytest

from sidecar.identity.model import World
from sidecar.sts.assume import StsEnv
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.world import demo_world

START = 1_800_000_000  # 2027-01-15T08:00:00Z


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.generate(CountingEntropy(1), "k1")


@pytest.fixture
def world() -> World:
    return demo_world()


@pytest.fixture
def env(world: World, keys: KeyRing, clock: FixedClock) -> StsEnv:
    return StsEnv(world, keys, clock, CountingEntropy(100))
