"""Which of gRPC core's two TCP listeners a serving process uses: iomgr's (grpc_tcp_server,
the default here) or the EventEngine's (gRPC's own default in recent releases).

On the EventEngine listener, the bytes of each call are read by EventEngine threads and handed
to the thread that polls the completion queue, which hands them to the event loop; on iomgr's,
the polling thread reads them itself. One hand-off fewer per call: measured against gRPC's
defaults, one call with nothing else in flight took about a fifth less time on uvloop (a tenth
on asyncio's loop), and a loaded sidecar answered 1-13 % more calls per second
(docs/BENCHMARKS.md, "Fourth pass").

gRPC reads its experiments (``GRPC_EXPERIMENTS``, comma-separated names, ``-name`` to turn one
off) once, when ``grpc`` is first imported, so ``serve`` calls ``choose`` before importing
anything that imports grpc. An operator who names ``event_engine_listener`` in
``GRPC_EXPERIMENTS`` (on or off) decides; nothing here overrides it. A gRPC release that no
longer knows the experiment logs "Unknown experiment" at start and runs its own default
(tests/server/process/test_process.py fails on it, so that this module is revisited).

Imports nothing of grpc: that is the point.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping

ENV = "GRPC_EXPERIMENTS"
EXPERIMENT = "event_engine_listener"


def _names(value: str | None) -> list[str]:
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def experiments(current: str | None) -> str:
    """``GRPC_EXPERIMENTS`` with the EventEngine listener turned off, unless ``current``
    already turns it on or off (then ``current``, as it is)."""
    names = _names(current)
    if any(name.lstrip("-") == EXPERIMENT for name in names):
        return current or ""
    return ",".join([*names, f"-{EXPERIMENT}"])


def listener(value: str | None) -> str:
    """The listener ``GRPC_EXPERIMENTS`` = ``value`` asks for: ``iomgr``, ``event_engine``, or
    ``grpc_default`` when it does not say."""
    for name in reversed(_names(value)):  # grpc applies them in order: the last one wins
        if name == EXPERIMENT:
            return "event_engine"
        if name == f"-{EXPERIMENT}":
            return "iomgr"
    return "grpc_default"


def choose(environ: MutableMapping[str, str]) -> str:
    """Set ``environ``'s ``GRPC_EXPERIMENTS`` for the iomgr listener (see ``experiments``) and
    return the listener in use, as ``listener`` names it. If grpc is already loaded it is too
    late to choose: ``environ`` is left alone and the answer is ``grpc_loaded_before``."""
    if "grpc" in sys.modules or "grpc._cython.cygrpc" in sys.modules:
        return "grpc_loaded_before"
    environ[ENV] = experiments(environ.get(ENV))
    return listener(environ[ENV])


__all__ = ["ENV", "EXPERIMENT", "choose", "experiments", "listener"]
