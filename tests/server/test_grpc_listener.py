"""Choosing gRPC core's TCP listener before grpc loads (sidecar/server/grpc_listener.py):
iomgr's unless the operator's GRPC_EXPERIMENTS already names the EventEngine listener, and
nothing changed once grpc is loaded (it would not take effect)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sidecar.server.grpc_listener import ENV, choose, experiments, listener


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, "-event_engine_listener"),
        ("", "-event_engine_listener"),
        ("tcp_rcv_lowat", "tcp_rcv_lowat,-event_engine_listener"),
        (" a , ,b ", "a,b,-event_engine_listener"),
        ("event_engine_listener", "event_engine_listener"),  # the operator's choice stands
        ("x,-event_engine_listener", "x,-event_engine_listener"),
        (" event_engine_listener ,y", " event_engine_listener ,y"),
    ],
)
def test_experiments_turn_the_event_engine_listener_off_unless_named(
    current: str | None, expected: str
) -> None:
    assert experiments(current) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "grpc_default"),
        ("tcp_rcv_lowat", "grpc_default"),
        ("-event_engine_listener", "iomgr"),
        ("event_engine_listener", "event_engine"),
        ("event_engine_listener,-event_engine_listener", "iomgr"),  # the last one wins
        ("-event_engine_listener, event_engine_listener", "event_engine"),
        ("-event_engine_listener_v2", "grpc_default"),  # another name entirely
    ],
)
def test_listener_names_what_the_variable_asks_for(value: str | None, expected: str) -> None:
    assert listener(value) == expected


def _without_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("grpc", "grpc._cython.cygrpc"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_choose_sets_the_variable_before_grpc_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_grpc(monkeypatch)
    environ = {"OTHER": "1"}
    assert choose(environ) == "iomgr"
    assert environ == {"OTHER": "1", ENV: "-event_engine_listener"}


def test_choose_keeps_the_operators_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_grpc(monkeypatch)
    environ = {ENV: "event_engine_listener"}
    assert choose(environ) == "event_engine"
    assert environ == {ENV: "event_engine_listener"}


def test_choose_changes_nothing_once_grpc_is_loaded() -> None:
    assert "grpc" in sys.modules  # this test process has loaded it
    environ: dict[str, str] = {}
    assert choose(environ) == "grpc_loaded_before"
    assert environ == {}


@pytest.mark.parametrize("module", ["sidecar.server.grpc_listener", "sidecar.cli"])
def test_serve_can_choose_before_grpc_loads(module: str) -> None:
    """``serve`` chooses in sidecar.cli, before importing the server: neither module may load
    grpc on import, or the choice would come too late."""
    code = f"import sys, {module}; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out
