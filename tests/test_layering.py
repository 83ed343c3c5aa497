"""The functional core imports no transport, metrics, clock or environment, and only the layers
below it (docs/ARCHITECTURE.md, "Layering"). The document's table states the same allowances:
a test below keeps the two in agreement."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIDECAR = ROOT / "sidecar"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
PURE = ("errors", "policy", "identity", "sts", "engine", "policytest", "mesh", "inspect_role")
FORBIDDEN_MODULES = {"grpc", "prometheus_client", "os", "time", "socket", "subprocess", "random"}
# What each pure part may import from the project (one-way imports).
ALLOWED_PROJECT = {
    "errors": set(),
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
    "policytest": {
        "sidecar.errors",
        "sidecar.policy",
        "sidecar.identity",
        "sidecar.sts",
        "sidecar.engine",
        "sidecar.policytest",
    },
    "mesh": {"sidecar.errors", "sidecar.policy", "sidecar.identity", "sidecar.sts", "sidecar.mesh"},
    "inspect_role": {
        "sidecar.errors",
        "sidecar.policy",
        "sidecar.identity",
        "sidecar.sts",
        "sidecar.inspect_role",
    },
}
# Pure computation libraries a pure package may use directly (no I/O, no clock).
THIRD_PARTY = {
    "errors": set(),
    "policy": set(),
    "identity": set(),
    "sts": {"cryptography", "jwt", "signxml", "lxml", "defusedxml"},
    "engine": set(),
    "policytest": set(),
    "mesh": set(),
    "inspect_role": set(),
}
CLOCK_OWNERS = {"datetime", "date", "dt", "time", "os"}  # an injected clock's .now() is fine
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "getenv"}


def _modules(package: str) -> list[Path]:
    """The files of a pure part: a package's modules, or the module ``sidecar/<package>.py``."""
    if (SIDECAR / package).is_dir():
        return sorted((SIDECAR / package).rglob("*.py"))
    module = SIDECAR / f"{package}.py"
    return [module] if module.is_file() else []


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


def _layering_rows() -> dict[str, tuple[set[str], set[str]]]:
    """The layering table of docs/ARCHITECTURE.md: part -> (project imports, third-party
    imports), each the names written in backticks in its column."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Layering", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`sidecar/(\w+)(?:/|\.py)`", cells[0]) if len(cells) >= 3 else None
        if name is not None:
            names = [set(re.findall(r"`([\w.]+)`", cell)) for cell in cells[1:3]]
            rows[name.group(1)] = (names[0], names[1])
    return rows


def test_architecture_document_states_what_this_test_enforces() -> None:
    """Every pure part has a row in the layering table naming exactly the project layers and
    third-party modules allowed here."""
    rows = _layering_rows()
    assert set(rows) == set(PURE)
    for package in PURE:
        project, third_party = rows[package]
        allowed = {name.removeprefix("sidecar.") for name in ALLOWED_PROJECT[package]}
        assert project == allowed - {package}, f"{package}: project imports in the document"
        assert third_party == THIRD_PARTY[package], f"{package}: third-party modules"
