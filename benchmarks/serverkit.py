"""Helpers for the server benchmarks (transport.py): sidecar processes on 127.0.0.1, h2load
runs that speak gRPC, Prometheus scrapes, RSS from /proc and the machine description.

Nothing here starts anything by itself; every process is owned by a context manager that stops
it (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


# -- small things ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def grpc_frame(message: bytes) -> bytes:
    """The gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def percentiles(values: Sequence[float], points: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles, keyed "p50", "p99", "p99.9"."""
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in points:
        key = f"p{p:g}"
        if not ordered:
            out[key] = math.nan
            continue
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        out[key] = ordered[min(rank, len(ordered)) - 1]
    return out


def speed_probe() -> float:
    """Milliseconds for a fixed 1e6-step Python loop, best of 3 (as engine_bench.py)."""
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def h2load_version() -> str:
    try:
        out = subprocess.run(
            ["h2load", "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "sidecar_uncommitted": git("status", "--porcelain", "--", "sidecar").splitlines(),
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "h2load": h2load_version(),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def latest_result(pattern: str) -> Path | None:
    found = sorted(RESULTS.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


# -- /proc --------------------------------------------------------------------------------------


def _status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(x) for x in text]
    return out


def rss_mib(pids: Sequence[int]) -> dict[str, float]:
    """Resident set size now (VmRSS) and its peak (VmHWM), summed over ``pids``, in MiB."""
    rss = sum(_status_kb(p, "VmRSS") for p in pids)
    hwm = sum(_status_kb(p, "VmHWM") for p in pids)
    return {"rss_mib": round(rss / 1024, 1), "peak_rss_mib": round(hwm / 1024, 1)}


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time consumed so far by ``pids`` (all their threads), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


# -- Prometheus text ----------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Scrape:
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            v
            for n, lab, v in self.samples
            if n == name and all(lab.get(k) == want for k, want in labels.items())
        )

    def codes(self, method: str) -> dict[str, float]:
        """grpc_server_handled_total by code for one method."""
        out: dict[str, float] = {}
        for n, lab, v in self.samples:
            if n == "grpc_server_handled_total" and lab.get("grpc_method") == method:
                out[lab["grpc_code"]] = out.get(lab["grpc_code"], 0) + v
        return out


def scrape(http_port: int) -> Scrape:
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out = Scrape()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(2) or ""))
            out.samples.append((m.group(1), labels, float(m.group(3))))
    return out


def wait_ready(http_port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sidecar exited with {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the sidecar on HTTP port {http_port} was not ready in {timeout} s")


# -- sidecar processes --------------------------------------------------------------------------


@dataclass
class ServerProc:
    proc: subprocess.Popen[Any]
    grpc_port: int
    http_port: int
    workers: int
    log: IO[bytes]

    @property
    def pids(self) -> list[int]:
        """The serving processes: the workers when forked, else the process itself."""
        kids = children(self.proc.pid)
        return kids if self.workers > 1 and kids else [self.proc.pid]

    def rss(self) -> dict[str, float]:
        return rss_mib(self.pids)

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def scrape(self) -> Scrape:
        return scrape(self.http_port)

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")


def stop(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def sidecar_cli(
    keys_file: str,
    *,
    workers: int = 1,
    args: Sequence[str] = (),
    tree: Path = ROOT,
    prefix: Sequence[str] = (),
) -> Iterator[ServerProc]:
    """``python -m sidecar serve`` (the embedded demo world unless ``args`` has --config) on
    free 127.0.0.1 ports, with the ``sidecar`` package of ``tree`` (its working directory, so
    an older copy can run beside this one), under ``prefix`` (e.g. taskset -c 0)."""
    grpc_port, http_port = free_port(), free_port()
    cmd = [
        *prefix, sys.executable, "-m", "sidecar", "serve",
        "--listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}",
        "--keys", keys_file, "--workers", str(workers), "--log-level", "warning", "--grace", "2",
        *args,
    ]  # fmt: skip
    with tempfile.NamedTemporaryFile(prefix="sidecar-", suffix=".log") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tree)
        try:
            wait_ready(http_port, proc)
            if workers > 1:  # the HTTP port answers as soon as one worker is up
                deadline = time.monotonic() + 10
                while len(children(proc.pid)) < workers and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1.0)
            yield ServerProc(proc, grpc_port, http_port, workers, log)
        finally:
            stop(proc)


@contextlib.contextmanager
def sidecar_bench(script: str, keys_file: str, max_seconds: float) -> Iterator[ServerProc]:
    """The bench server of ``script`` (``--serve``): prints its ports as one JSON line."""
    cmd = [
        sys.executable, script, "--serve", "--keys", keys_file,
        "--max-seconds", str(int(max_seconds)),
    ]  # fmt: skip
    with tempfile.NamedTemporaryFile(prefix="sidecar-", suffix=".log") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=ROOT)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=10)
                log.flush()
                raise RuntimeError(
                    f"bench server exited with {proc.returncode}: "
                    + Path(log.name).read_text(errors="replace")[-2000:]
                )
            ports = json.loads(line)
            wait_ready(ports["http_port"], proc)
            yield ServerProc(proc, ports["grpc_port"], ports["http_port"], 1, log)
        finally:
            stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def generate_keys(directory: str) -> str:
    path = str(Path(directory) / "keys.json")
    subprocess.run(
        [sys.executable, "-m", "sidecar", "keys", "generate", "--kid", "bench", "--out", path],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    return path


# -- h2load -------------------------------------------------------------------------------------


@dataclass
class H2Result:
    """One h2load run. ``latencies_us`` is filled only when a log file was asked for."""

    rps: float
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status: str
    command: str
    latencies_us: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rps": round(self.rps, 1),
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "errored": self.errored,
            "timeout": self.timeout,
            "status_codes": self.status,
            "command": self.command,
        }
        if self.latencies_us:
            ms = [u / 1000 for u in self.latencies_us]
            out["latency_ms"] = {
                k: round(v, 3) for k, v in percentiles(ms, (50, 90, 99, 99.9, 100)).items()
            }
        return out


def h2load(
    port: int,
    path: str,
    body: Path,
    *,
    clients: int,
    streams: int,
    duration: float,
    warmup: float,
    rps_per_client: float | None = None,
    headers: Sequence[str] = (),
    latencies: bool = False,
) -> H2Result:
    """A timed h2load run (``-D``) over HTTP/2 cleartext with one thread, speaking gRPC.

    h2load counts HTTP status 200 as success; a gRPC error is also a 200 (with grpc-status in
    the trailers), so callers check the server's own counters as well."""
    cmd = [
        "h2load", "-c", str(clients), "-m", str(streams), "-t", "1",
        "-D", f"{round(duration * 1000)}ms", "--warm-up-time", f"{round(warmup * 1000)}ms",
        "-d", str(body),
    ]  # fmt: skip
    if rps_per_client is not None:
        cmd += ["--rps", f"{rps_per_client:.3f}"]
    for h in (*GRPC_HEADERS, *headers):
        cmd += ["-H", h]
    shown = [*cmd, f"http://127.0.0.1:PORT{path}"]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "requests.tsv"
        if latencies:
            cmd += ["--log-file", str(log)]
        cmd.append(f"http://127.0.0.1:{port}{path}")
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + warmup + 60, check=False
        )
        out = done.stdout
        if done.returncode != 0 or "finished in" not in out:
            raise RuntimeError(f"h2load failed ({done.returncode}): {out[-800:]}{done.stderr}")
        lat = []
        if latencies:
            for row in log.read_text().splitlines():
                cols = row.split("\t")
                if len(cols) >= 3 and cols[1] == "200":
                    lat.append(int(cols[2]))
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    req = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    nums = [int(x) for x in req.groups()] if req else [0] * 7
    status = re.search(r"status codes: (.*)", out)
    redacted = [
        (h.split(":", 1)[0] + ": …") if h.lower().startswith(("authorization", "x-amz")) else h
        for h in shown
    ]
    return H2Result(
        rps=rps,
        done=nums[2],
        succeeded=nums[3],
        failed=nums[4],
        errored=nums[5],
        timeout=nums[6],
        status=status.group(1) if status else "",
        command=" ".join(redacted),
        latencies_us=lat,
    )


def run_cpu_rounds(
    script: str,
    run: Callable[[str], Coroutine[Any, Any, dict[str, Any]]],
    *,
    results: str,
    caption: Callable[[dict[str, Any]], str],
    baseline_key: str,
    baseline_label: str,
) -> int:
    """The shared tail of the in-process CPU benchmarks (authorize_parts, hot_path_ab,
    check_gap): skip without h2load, run ``run(tmpdir)`` quietly, save the results with the
    command, machine and load average, and print each target's median µs per call and its
    difference from ``out[baseline_key]`` in the same round."""
    if shutil.which("h2load") is None:
        print("SKIP: h2load not found (apt-get install nghttp2-client)")
        return 0
    from sidecar.server.logs import configure

    configure("warning")
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(run(tmp))
    data = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", f"benchmarks/{script}", *sys.argv[1:]]),
        "machine": machine(),
        "loadavg": loadavg(),
        **out,
    }
    print(
        f"\n{caption(out)}\n\n| target | µs per call (median) | {baseline_label}, same round: "
        "median (min to max) |\n|---|---:|---|"
    )
    for name, values in out["cpu_us_per_call"].items():
        d = out[baseline_key][name]
        print(
            f"| {name} | {statistics.median(values):.0f} | {statistics.median(d):+.1f} "
            f"({min(d):+.0f} to {max(d):+.0f}) |"
        )
    path = write_results(results, data)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0
