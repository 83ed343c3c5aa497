"""The event loop a serving process runs on: uvloop where it is installed (a dependency on Linux
and macOS), else asyncio's own.

grpc.aio spends much of each call in the event loop (waking on its poller, running the
handler's task), and uvloop runs that part in C: in the same run, a cached Authorize and a
Check took 8-10 % less server CPU per call on uvloop under load. On gRPC's EventEngine TCP
listener one call at a time with nothing else in flight was 30-50 µs slower on uvloop; on the
iomgr listener that ``serve`` chooses (grpc_listener.py) a bare server on uvloop is the faster
for one call too (docs/BENCHMARKS.md, "Against a bare gRPC server"). ``--event-loop asyncio``
keeps asyncio's loop, for a platform or a debugger that prefers it; ``uvloop`` refuses to start
without it rather than fall back unnoticed.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

CHOICES = ("auto", "uvloop", "asyncio")
T = TypeVar("T")


class EventLoopUnavailable(RuntimeError):
    pass


def resolve(choice: str) -> str:
    """The loop ``choice`` means here: ``auto`` is uvloop when it is installed."""
    if choice not in CHOICES:
        raise ValueError(f"--event-loop must be one of {', '.join(CHOICES)}, not {choice!r}")
    installed = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not installed:
        raise EventLoopUnavailable(
            "--event-loop uvloop: uvloop is not installed (pip install uvloop), or use "
            "--event-loop asyncio"
        )
    if choice == "auto":
        return "uvloop" if installed else "asyncio"
    return choice


def run(main: Callable[[], Coroutine[Any, Any, T]], loop: str) -> T:
    """Run ``main()`` to completion on a new loop of the kind ``resolve`` named."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``, as the running loop is (for the start-up log)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
