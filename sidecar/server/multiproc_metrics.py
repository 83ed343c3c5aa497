"""`serve --workers N`: one set of metrics for the whole process group, whichever worker
answers the scrape, with prometheus_client's multiprocess mode (docs/SERVER.md, "Metrics").

Each worker writes its metric values to memory-mapped files, ``<type>_<pid>.db``, in one
directory; any worker's /metrics merges every file there (sidecar/server/metrics.py). The
supervisor owns the directory: it empties it before the first fork (an `emptyDir` outlives a
container restart, and pids restart with the container), removes a dead worker's live gauges,
and cleans up at exit. ``--workers 1`` keeps the in-process registry and writes no file.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Callable

from prometheus_client import multiprocess, values

from sidecar.server.metrics import export_multiprocess_dir

log = logging.getLogger("iam_sidecar")

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LEGACY_ENV = "prometheus_multiproc_dir"  # prometheus_client still honours the old spelling


class MetricsDir:
    """The workers' metric files, in ``path`` (created if missing) or, without one, in a fresh
    temporary directory under $TMPDIR that ``close`` removes."""

    def __init__(self, path: str | None) -> None:
        self.temporary = not path
        if path:
            os.makedirs(path, mode=0o700, exist_ok=True)
            self.path = path
            self._remove_files()  # a previous run's counters would be summed into ours
        else:
            self.path = tempfile.mkdtemp(prefix="iam-sidecar-metrics-")
        # Inherited by the workers: prometheus_client names each file from it.
        os.environ[ENV] = self.path
        os.environ.pop(_LEGACY_ENV, None)

    def worker_died(self, pid: int) -> None:
        """Drop the dead worker's live gauges (iam_sidecar_ready, iam_sidecar_world_generation);
        its counters and histograms stay, so the totals never go down."""
        mark_dead: Callable[[int, str], None] = multiprocess.mark_process_dead
        mark_dead(pid, self.path)

    def close(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self._remove_files()

    def _remove_files(self) -> None:
        for name in glob.glob(os.path.join(glob.escape(self.path), "*.db")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)


def use_in_worker(path: str) -> None:
    """In a newly forked worker, before its Metrics exist: write every metric value from now on
    to ``path`` and serve the merged view of all workers' files.

    prometheus_client picks its value class when it is first imported, long before the fork,
    and every metric reads ``values.ValueClass`` when it is created: so the class is replaced
    here rather than through the environment. Its pid comes from a cached copy (refreshed in a
    forked child) instead of a getpid() system call on every increment."""
    pid = [os.getpid()]
    os.register_at_fork(after_in_child=lambda: pid.__setitem__(0, os.getpid()))
    value_class: Callable[[Callable[[], int]], type] = values.MultiProcessValue
    values.ValueClass = value_class(lambda: pid[0])
    export_multiprocess_dir(path)


def single_process() -> None:
    """``--workers 1``: the in-process registry even when $PROMETHEUS_MULTIPROC_DIR is set
    (prometheus_client would otherwise write files there, and a restarted container's pid 1
    would resume the last run's counters from them)."""
    found = [name for name in (ENV, _LEGACY_ENV) if os.environ.pop(name, None) is not None]
    if found:
        values.ValueClass = values.MutexValue
        log.info("one process: metrics stay in memory; the directory is not used",
                 extra={"ignored": found[0]})  # fmt: skip
