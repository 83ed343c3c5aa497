"""What `--workers N` metrics cost per request: the metric updates of one Authorize (started,
handled OK, handling time, decision) with the in-process registry (`--workers 1`) and with the
multiprocess files (`--workers N`), and the time to render /metrics from two workers' files.

    .venv/bin/python benchmarks/metrics_workers.py

Median (and min) of 7 timed loops, in µs. In-process figures only: compare them, do not read
them as the server's cost per call.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import timeit
from collections.abc import Callable

from prometheus_client import generate_latest

from sidecar.server.metrics import Metrics
from sidecar.server.multiproc_metrics import use_in_worker

LOOPS = 20_000
REPEAT = 7


def per_request(metrics: Metrics) -> Callable[[], None]:
    labels = ("unary", "iamsidecar.v1.Authorizer", "Authorize")
    started = metrics.started.labels(*labels)
    handled = metrics.handled.labels(*labels, "OK")
    handling = metrics.handling.labels(*labels)
    allowed = metrics.decisions.labels("ALLOWED")

    def request() -> None:
        started.inc()
        allowed.inc()
        handled.inc()
        handling.observe(0.0002)

    return request


def timed(fn: Callable[[], object], loops: int = LOOPS) -> tuple[float, float]:
    runs = [t / loops * 1e6 for t in timeit.repeat(fn, number=loops, repeat=REPEAT)]
    return statistics.median(runs), min(runs)


def main() -> None:
    local = timed(per_request(Metrics()))
    with tempfile.TemporaryDirectory() as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        pid = os.fork()
        if pid == 0:  # a second worker, so the scrape merges two sets of files
            use_in_worker(directory)
            per_request(Metrics())()
            os._exit(0)
        os.waitpid(pid, 0)
        use_in_worker(directory)
        files = Metrics()
        multi = timed(per_request(files))
        scrape = timed(lambda: generate_latest(files.registry), loops=200)
    print(f"metric updates of one Authorize, in-process registry: {local[0]:.2f} µs "
          f"(min {local[1]:.2f})")  # fmt: skip
    print(f"metric updates of one Authorize, multiprocess files:  {multi[0]:.2f} µs "
          f"(min {multi[1]:.2f})")  # fmt: skip
    print(f"/metrics from two workers' files: {scrape[0]:.0f} µs (min {scrape[1]:.0f})")


if __name__ == "__main__":
    main()
