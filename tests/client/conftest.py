"""The in-process sidecar of tests/server (demo world on 127.0.0.1) for the SDK's tests."""

from tests.server.conftest import channel, clock, sidecar

__all__ = ["channel", "clock", "sidecar"]
