"""The functional core imports no transport, metrics, clock or environment (PRODUCT.md §2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SIDECAR = Path(__file__).resolve().parent.parent / "sidecar"
PURE = ("policy", "identity", "sts", "engine")
FORBIDDEN_MODULES = {"grpc", "prometheus_client", "os", "time", "socket", "subprocess", "random"}
# What each pure package may import from the project (one-way imports).
ALLOWED_PROJECT = {
    "policy": {"sidecar.errors", "sidecar.policy"},
    "identity": {"sidecar.errors", "sidecar.policy", "sidecar.identity"},
    "sts": {"sidecar.errors", "sidecar.policy", "sidecar.identity", "sidecar.sts"},
    "engine": {
        "sidecar.errors",
        "sidecar.policy",
        "sidecar.identity",
        "sidecar.sts",
        "sidecar.engine",
    },
}
# Pure computation libraries a pure package may use directly (no I/O, no clock).
THIRD_PARTY = {
    "policy": set(),
    "identity": set(),
    "sts": {"cryptography", "jwt", "signxml", "lxml", "defusedxml"},
    "engine": {"cachetools"},
}
CLOCK_OWNERS = {"datetime", "date", "dt", "time", "os"}  # an injected clock's .now() is fine
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "getenv"}


def _modules(package: str) -> list[Path]:
    return sorted((SIDECAR / package).rglob("*.py")) if (SIDECAR / package).is_dir() else []


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_only_what_they_may(package: str) -> None:
    """Pure packages use the stdlib (minus I/O and clocks) and the layers below them."""
    for path in _modules(package):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
            if top == "sidecar":
                assert any(
                    name == allowed or name.startswith(allowed + ".")
                    for allowed in ALLOWED_PROJECT[package]
                ), f"{path.name} imports {name}"
            elif top != "__future__" and top not in THIRD_PARTY[package]:
                assert top in sys.stdlib_module_names, f"{path.name} imports third-party {name}"


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_do_not_read_the_clock(package: str) -> None:
    """No datetime.now()/time.time()-style calls: clocks are injected."""
    for path in _modules(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                owner_name = (
                    owner.id
                    if isinstance(owner, ast.Name)
                    else owner.attr
                    if isinstance(owner, ast.Attribute)
                    else ""
                )
                reads_clock = node.func.attr in CLOCK_CALLS and owner_name in CLOCK_OWNERS
                assert not reads_clock, f"{path.name}:{node.lineno} reads the clock"
