"""`serve --workers N`: a small arbiter in the parent process (as gunicorn's) that forks N
workers before any gRPC object exists and keeps N running.

The workers write their metrics to files in one directory (`--metrics-dir`, emptied at start)
and each /metrics merges them (sidecar/server/multiproc_metrics.py).

A worker that dies while the sidecar is not shutting down (the OOM killer's SIGKILL, a crash)
is reaped, logged with its signal or exit code, counted in shared memory that every worker's
/metrics reads (`iam_sidecar_worker_exits_total`), its live gauges' file removed, and replaced
after a per-worker backoff (`restart_delay`). The replacement serves the world file as it is
now, reloaded in the parent just before the fork; a file that no longer loads gives it the last
good world the parent has.
A worker of the first start-up that cannot start stops the sidecar with exit code 1, as a
single process would. SIGTERM and SIGINT are forwarded and stop the replacing; the parent then
waits for every worker, at most `--grace` plus `SHUTDOWN_MARGIN` seconds, and kills what is
left. SIGHUP is forwarded.

The parent blocks the signals it handles and takes them with sigtimedwait in its loop, so no
handler runs between a fork and a waitpid; workers get the original signal mask back. The
parent never creates a gRPC object (grpc must not be running when a process forks).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from sidecar.errors import SidecarError
from sidecar.identity.model import World
from sidecar.server import event_loop
from sidecar.server.app import ServeOptions, keys_path, load_keys, load_world, run_process
from sidecar.server.metrics import export_worker_exits
from sidecar.server.multiproc_metrics import ENV, MetricsDir, use_in_worker
from sidecar.sts.keys import KeyRing

log = logging.getLogger("iam_sidecar")

# Backoff before replacing a worker (documented in docs/SERVER.md, "Draining and workers").
MIN_DELAY = 0.1  # seconds before the first replacement after a fast death
MAX_DELAY = 30.0  # the doubling stops here
STABLE_AFTER = 10.0  # a worker that lived this long resets its slot: replaced at once
SHUTDOWN_MARGIN = 5.0  # beyond --grace, for a draining worker's interpreter to exit
TICK = 1.0  # the loop's longest sleep (a missed SIGCHLD costs at most this)
# A worker's exit code when its main raised: in practice it could not start (port in use,
# unreadable certificate), since a serving worker only returns after a drain.
WORKER_FAILED = 3

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
HANDLED = {*FORWARDED, signal.SIGCHLD}
CAUSES = ("signal", "exit")


def restart_delay(previous: float, lifetime: float) -> float:
    """Seconds to wait before replacing a worker that died after ``lifetime`` seconds, when the
    previous replacement in its slot waited ``previous`` seconds (0 for none): none after a
    worker that lived STABLE_AFTER seconds, else double the last wait, from MIN_DELAY up to
    MAX_DELAY (0.1, 0.2, 0.4, ... 25.6, 30, 30, ...)."""
    if lifetime >= STABLE_AFTER:
        return 0.0
    return min(MAX_DELAY, max(MIN_DELAY, previous * 2))


def describe_exit(exit_code: int) -> tuple[str, dict[str, Any]]:
    """How a worker ended, from ``os.waitstatus_to_exitcode`` (negative: killed by that signal):
    the metric's cause and the log fields."""
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return "signal", {"signal": name}
    return "exit", {"exit_code": exit_code}


class ExitCounts:
    """Worker exits by cause in anonymous shared memory, mapped before the first fork: the
    parent writes, workers read at scrape time (single writer, aligned 8-byte slots)."""

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, 8 * len(CAUSES))  # MAP_SHARED: forked children see writes
        self._slots = memoryview(self._mem).cast("Q")

    def add(self, cause: str) -> None:
        i = CAUSES.index(cause)
        self._slots[i] += 1

    def read(self) -> dict[str, int]:
        return {cause: int(self._slots[i]) for i, cause in enumerate(CAUSES)}


Loaded = tuple[World, KeyRing, str | None]


class LastGood:
    """The world and key set for the next worker: reloaded from the files at each call of
    ``reload``; when they no longer load, the last set that did (with an error log line)."""

    def __init__(self, opts: ServeOptions, loaded: Loaded) -> None:
        self.opts = opts
        self.loaded = loaded

    def reload(self) -> Loaded:
        world, keys, keys_from = self.loaded
        try:
            world = load_world(self.opts)
            # As a worker's own reload: a key file is re-read, a development key set is kept.
            if keys_from or keys_path(self.opts, world):
                keys, keys_from = load_keys(self.opts, world)
        except Exception as err:  # the parent must outlive any bad file
            expected = isinstance(err, SidecarError | OSError)
            log.error(
                "the world no longer loads; the new worker serves the last good one",
                extra={"error": str(err) if expected else repr(err)},
                exc_info=None if expected else err,
            )
            return self.loaded
        self.loaded = (world, keys, keys_from)
        return self.loaded


@dataclass
class Slot:
    index: int
    pid: int = 0  # 0 while no worker runs in this slot
    started: float = 0.0  # monotonic time of the fork
    delay: float = 0.0  # the backoff used for this slot's last replacement
    due: float | None = None  # monotonic time of the next fork, while waiting to replace
    first: bool = True  # still the worker of the first start-up


class Arbiter:
    """Keeps ``size`` workers running; ``make_worker(first)`` runs in the parent before each
    fork and returns what the worker runs (its exit code)."""

    def __init__(
        self,
        size: int,
        make_worker: Callable[[bool], Callable[[], int]],
        *,
        stop_timeout: float,
        exits: ExitCounts,
        on_exit: Callable[[int], None] = lambda pid: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = [Slot(i) for i in range(size)]
        self.make_worker = make_worker
        self.stop_timeout = stop_timeout
        self.exits = exits
        self.on_exit = on_exit  # called with the pid of every worker reaped
        self.clock = clock
        self.stopping_at: float | None = None
        self.status = 0
        self._mask: set[int | signal.Signals] = set()

    def run(self) -> int:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # not SIG_IGN, which reaps for us
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            for slot in self.slots:
                self._spawn(slot, first=True)
            log.info("workers started", extra={"workers": [s.pid for s in self._running()]})
            while self._step():
                pass
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
        return self.status

    def _step(self) -> bool:
        """One turn of the loop; False once every worker has stopped after SIGTERM/SIGINT."""
        self._reap()
        now = self.clock()
        if self.stopping_at is not None:
            if not self._running():
                return False
            if now >= self.stopping_at + self.stop_timeout:
                self._kill_remaining()
                return True
        else:
            for slot in self.slots:
                if slot.due is not None and now >= slot.due:
                    self._spawn(slot, first=False)
        info = signal.sigtimedwait(HANDLED, self._timeout(self.clock()))
        if info is not None:
            self._on_signal(signal.Signals(info.si_signo))
        return True

    def _timeout(self, now: float) -> float:
        wake = [now + TICK]
        if self.stopping_at is not None:
            wake.append(self.stopping_at + self.stop_timeout)
        else:
            wake += [s.due for s in self.slots if s.due is not None]
        return max(0.0, min(wake) - now)

    def _on_signal(self, signum: signal.Signals) -> None:
        if signum == signal.SIGCHLD:
            return  # reaped at the top of the loop
        if signum != signal.SIGHUP and self.stopping_at is None:
            log.info("stopping workers", extra={"signal": signum.name})
            self._stop()
        self._forward(signum)

    def _stop(self) -> None:
        self.stopping_at = self.clock()
        for slot in self.slots:
            slot.due = None

    def _forward(self, signum: signal.Signals) -> None:
        for slot in self._running():
            with contextlib.suppress(ProcessLookupError):  # died just now: reaped next turn
                os.kill(slot.pid, signum)

    def _running(self) -> list[Slot]:
        return [s for s in self.slots if s.pid]

    def _spawn(self, slot: Slot, *, first: bool) -> None:
        main = self.make_worker(first)
        try:
            pid = os.fork()
        except OSError as err:  # EAGAIN, ENOMEM: likely under the pressure that killed one
            slot.delay = restart_delay(slot.delay, 0.0)
            slot.due = self.clock() + slot.delay
            log.error(
                "cannot fork a worker; retrying",
                extra={"error": str(err), "retry_in_seconds": slot.delay},
            )
            return
        if pid == 0:
            self._worker(main)
        slot.pid, slot.started, slot.due, slot.first = pid, self.clock(), None, first
        if not first:
            log.info("worker started", extra={"pid": pid, "slot": slot.index})

    def _worker(self, main: Callable[[], int]) -> NoReturn:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            code = main()
        except Exception:
            log.exception("worker failed", extra={"pid": os.getpid()})
            code = WORKER_FAILED
        finally:
            os._exit(code)

    def _reap(self) -> None:
        by_pid = {s.pid: s for s in self._running()}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = by_pid.pop(pid, None)
            if slot is not None:
                self._exited(slot, os.waitstatus_to_exitcode(status))

    def _exited(self, slot: Slot, exit_code: int) -> None:
        pid, slot.pid = slot.pid, 0
        self.on_exit(pid)
        cause, fields = describe_exit(exit_code)
        if self.stopping_at is not None:
            if exit_code != 0:
                self.status = 1
            log.info("worker stopped", extra={"pid": pid, **fields})
            return
        if slot.first and exit_code == WORKER_FAILED:
            # As a single process (and gunicorn on a boot error): the sidecar did not start.
            log.error("a worker could not start; stopping", extra={"pid": pid, **fields})
            self.status = 1
            self._stop()
            self._forward(signal.SIGTERM)
            return
        now = self.clock()
        lived = now - slot.started
        slot.delay = restart_delay(slot.delay, lived)
        slot.due = now + slot.delay
        self.exits.add(cause)
        log.log(
            logging.WARNING if exit_code == 0 else logging.ERROR,
            "worker exited; replacing it",
            extra={"pid": pid, **fields, "lived_seconds": round(lived, 3),
                   "restart_in_seconds": slot.delay},
        )  # fmt: skip

    def _kill_remaining(self) -> None:
        for slot in self._running():
            log.error(
                "worker still running after the grace period; killing it",
                extra={"pid": slot.pid, "waited_seconds": self.stop_timeout},
            )
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(slot.pid, signal.SIGKILL)
                os.waitpid(slot.pid, 0)
            self.on_exit(slot.pid)
            slot.pid = 0
        self.status = 1


def supervise(opts: ServeOptions, world: World, keys: KeyRing, keys_from: str | None) -> int:
    """Serve with ``opts.workers`` supervised workers; the parent's exit code (0 when every
    worker drained cleanly on SIGTERM/SIGINT)."""
    source = LastGood(opts, (world, keys, keys_from))
    exits = ExitCounts()
    export_worker_exits(exits.read)  # before the first fork: every worker's Metrics reads it
    try:
        metrics_dir = MetricsDir(opts.metrics_dir or os.environ.get(ENV))
    except OSError as err:
        log.error("cannot start: the metrics directory is not usable", extra={"error": str(err)})
        return 1
    log.info("workers share their metrics through files", extra={"metrics_dir": metrics_dir.path})

    def make_worker(first: bool) -> Callable[[], int]:
        loaded = source.loaded if first else source.reload()

        def main() -> int:
            use_in_worker(metrics_dir.path)  # before run_process creates its Metrics
            return event_loop.run(lambda: run_process(opts, *loaded), opts.event_loop)

        return main

    arbiter = Arbiter(
        opts.workers,
        make_worker,
        stop_timeout=opts.grace + SHUTDOWN_MARGIN,
        exits=exits,
        on_exit=metrics_dir.worker_died,
    )
    try:
        return arbiter.run()
    finally:
        metrics_dir.close()
