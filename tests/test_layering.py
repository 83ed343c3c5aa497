"""The functional core imports no transport, metrics, clock or environment (PRODUCT.md §2)."""

from __future__ import annotations

import ast
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
            elif top not in {"__future__"}:
                import sys

                assert top in sys.stdlib_module_names, f"{path.name} imports third-party {name}"


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_do_not_read_the_clock(package: str) -> None:
    """No datetime.now()/time.time()-style calls: clocks are injected."""
    for path in _modules(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in CLOCK_CALLS, f"{path.name}:{node.lineno}"
