"""The benchmark scripts still run against the code they measure: each one, in its shortest
setting, exits 0 and prints the figure it exists for. (A handler that changes what it returns
would otherwise break a benchmark silently until the next person runs it.)"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
needs_h2load = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")


def _run(script: str, *args: str, timeout: float = 240) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


def test_hot_path_times_the_authorize_and_check_handlers() -> None:
    out = _run("hot_path.py", "--repeats", "1", "--target", "0.002")
    assert "Services.authorize (whole handler, serialized answer)" in out
    assert "CheckService.check (whole handler, serialized answer)" in out


@needs_h2load
def test_authorize_parts_measures_every_step() -> None:
    out = _run("authorize_parts.py", "--rounds", "1", "--duration", "1")
    for step in ("parse", "peer", "engine", "handler", "authorize"):
        assert f"| {step} |" in out, out


@needs_h2load
def test_transport_times_the_handler_inside_the_loaded_server() -> None:
    out = _run("transport.py", "--parts", "handler", "--duration", "0.5", "--warmup", "0")
    assert "Authorize handler's own time inside the loaded server" in out, out


@needs_h2load
def test_hot_path_ab_serves_authorize_on_each_variant() -> None:
    out = _run("hot_path_ab.py", "--rounds", "1", "--duration", "1")
    for variant in ("before", "wrapper", "now"):
        assert f"| {variant} |" in out, out


@needs_h2load
def test_check_gap_serves_check_and_authorize() -> None:
    out = _run("check_gap.py", "--rounds", "1", "--duration", "1", "--only", "noop,check,authorize")
    for target in ("noop", "check", "authorize"):
        assert f"| {target} |" in out, out


@needs_h2load
@pytest.mark.slow
def test_versus_bare_answers_every_target_ok() -> None:
    out = _run(
        "versus_bare.py", "--parts", "throughput,single", "--rounds", "1", "--duration", "1",
        "--targets", "authorize,check,batch",
    )  # fmt: skip
    for target in ("bare", "bare_uvloop", "bare_stack", "authorize", "check", "batch"):
        assert f"| {target} |" in out, out
    line = out.split("gRPC codes on the sidecar over these runs: ", 1)[1].splitlines()[0]
    codes = ast.literal_eval(line)  # {method: {code: calls}}
    assert codes["Check"]["OK"] > 0, codes
    assert codes["Authorize"]["OK"] > 0, codes
    assert {code for seen in codes.values() for code in seen} == {"OK"}, codes
