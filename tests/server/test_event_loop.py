"""Choosing the serving event loop (sidecar/server/event_loop.py): ``auto`` is uvloop when it
is installed, an explicit ``uvloop`` without it is refused with a clear message, and ``run``
runs on the loop it names."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from sidecar.server import event_loop


def test_auto_is_uvloop_when_installed() -> None:
    assert importlib.util.find_spec("uvloop") is not None  # a dependency on this platform
    assert event_loop.resolve("auto") == "uvloop"
    assert event_loop.resolve("asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "uvloop" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert event_loop.resolve("auto") == "asyncio"
    with pytest.raises(event_loop.EventLoopUnavailable, match="--event-loop asyncio"):
        event_loop.resolve("uvloop")


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, uvloop, asyncio"):
        event_loop.resolve("trio")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_run_uses_the_loop_named(loop: str) -> None:
    async def main() -> str:
        return event_loop.running_loop_name()

    assert event_loop.run(main, loop) == loop
