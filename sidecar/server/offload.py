"""SimulateCustomPolicy in worker processes, so that no simulation holds the event loop (or the
GIL) that health checks and Authorize run on.

- Workers are started with the "spawn" method (fresh interpreters: nothing of grpc's threads
  is inherited), from a thread, when the first simulations come, and import the policy
  modules once. Request bytes go in, response bytes come out.
- At most ``workers`` simulations run at once. Up to ``max_waiting`` more wait for a free
  worker within their deadline (and at most ``max_seconds``); beyond that a call is refused at
  once with ThrottlingException.
- A simulation stops at the call's gRPC deadline or after ``max_seconds`` of work, whichever
  comes first (RequestTimeoutException): the worker checks the time between policies and
  between pairs. The caller is answered at that time even if the worker needs a moment to
  notice; the worker's place is given to another call only once it has stopped.
- ``close`` shuts the workers down (the server's drain calls it).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sidecar.errors import (
    LimitExceeded,
    MalformedPolicyDocument,
    RequestTimeoutException,
    SidecarError,
    ThrottlingException,
    ValidationError,
)

DEFAULT_WORKERS = 2
DEFAULT_MAX_WAITING = 8
DEFAULT_MAX_SECONDS = 5.0
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# How long past its stop time the caller waits for a worker to report that it stopped.
_REPORT_GRACE = 0.25

# What a worker sends back: the response bytes, or an error's (code, message, location).
Outcome = tuple[bytes | None, tuple[str, str, str] | None]
_ERRORS: dict[str, type[SidecarError]] = {
    e.code: e
    for e in (ValidationError, MalformedPolicyDocument, LimitExceeded, RequestTimeoutException)
}


def _stopped(why: str, seconds: float) -> RequestTimeoutException:
    if why == "deadline":
        return RequestTimeoutException(
            "SimulateCustomPolicy was stopped at the call's deadline before it finished."
        )
    return RequestTimeoutException(
        f"SimulateCustomPolicy was stopped after {seconds:g} seconds, the server's limit for "
        "one simulation; simulate fewer pairs or smaller policies."
    )


# -- in the worker process ----------------------------------------------------------------------


def _preload() -> None:
    """Import the simulation's modules when the worker starts, not on its first call. Ctrl-C in
    a terminal reaches the whole process group: the server drains and stops its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import sidecar.server.convert  # noqa: F401


def run_simulation(
    raw: bytes, stop_at: float, why: str, seconds: float, max_response_bytes: int
) -> Outcome:
    """One simulation in a worker. ``stop_at`` is on time.monotonic(), which on Linux is the
    same clock in every process."""
    from sidecar.api.v1 import authorizer_pb2
    from sidecar.server.convert import simulate_custom_policy

    def check() -> None:
        if time.monotonic() >= stop_at:
            raise _stopped(why, seconds)

    try:
        request = authorizer_pb2.SimulateCustomPolicyRequest.FromString(raw)
        body = simulate_custom_policy(request, check).SerializeToString()
        if len(body) > max_response_bytes:
            raise ValidationError(
                f"The simulation's response would be {len(body):,} bytes, more than the "
                f"server's message limit of {max_response_bytes:,}; simulate fewer pairs."
            )
    except SidecarError as err:
        return None, (err.code, err.message, err.location)
    return body, None


# -- in the server ------------------------------------------------------------------------------


class SimulationPool:
    def __init__(
        self,
        *,
        workers: int = DEFAULT_WORKERS,
        max_waiting: int = DEFAULT_MAX_WAITING,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self.max_seconds = max_seconds
        self.max_response_bytes = max_response_bytes
        self._executor: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(workers)
        self._waiting = 0
        self._running = 0  # simulations holding a worker, including ones the caller left
        self._closed = False
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._executor is not None

    @property
    def running(self) -> int:
        return self._running

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:  # called from threads (_submit)
            if self._closed:
                raise RuntimeError("the simulation workers are shut down")
            if self._executor is None:
                spawn = multiprocessing.get_context("spawn")
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=spawn, initializer=_preload
                )
            return self._executor

    async def _acquire(self, deadline: float | None) -> None:
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise ThrottlingException(
                f"Rate exceeded: {self.workers} simulations are running and {self._waiting} are "
                "waiting, the most this server allows; retry later."
            )
        wait, why = self.max_seconds, "cap"
        if deadline is not None and deadline - time.monotonic() < wait:
            wait, why = deadline - time.monotonic(), "deadline"
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=max(wait, 0.0))
        except TimeoutError:
            if why == "deadline":
                raise _stopped(why, self.max_seconds) from None
            raise ThrottlingException(
                f"Rate exceeded: no simulation worker became free within {wait:g} seconds; "
                "retry later."
            ) from None
        finally:
            self._waiting -= 1
        self._running += 1

    def _release(self) -> None:
        self._running -= 1
        self._slots.release()

    async def run(self, raw: bytes, time_remaining: float | None) -> bytes:
        """Simulate the serialized SimulateCustomPolicyRequest ``raw``; the serialized
        response. ``time_remaining`` is the call's (None: no deadline)."""
        start = time.monotonic()
        deadline = start + time_remaining if time_remaining is not None else None
        await self._acquire(deadline)
        loop = asyncio.get_running_loop()
        handed_over = False
        try:
            now = time.monotonic()
            stop_at, why = now + self.max_seconds, "cap"
            if deadline is not None and deadline < stop_at:
                stop_at, why = deadline, "deadline"
            submitting = loop.run_in_executor(None, self._submit, loop, raw, stop_at, why)
            handed_over = True  # from here _submit or the worker's end releases the slot
            future = await asyncio.shield(submitting)  # submitted even if this call is cancelled
            outcome = await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=stop_at - now + _REPORT_GRACE
            )
        except TimeoutError:
            raise _stopped(why, self.max_seconds) from None
        except BrokenProcessPool:
            with self._lock:  # the next call starts a new pool
                broken, self._executor = self._executor, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            if not handed_over:
                self._release()
        body, error = outcome
        if error is not None:
            code, message, location = error
            raise _ERRORS.get(code, SidecarError)(message, location=location)
        assert body is not None
        return body

    def _submit(
        self, loop: asyncio.AbstractEventLoop, raw: bytes, stop_at: float, why: str
    ) -> Future[Outcome]:
        """In a thread: starting a worker process (the first calls) takes tens of milliseconds
        that the event loop should not wait for."""
        try:
            future = self._pool().submit(
                run_simulation, raw, stop_at, why, self.max_seconds, self.max_response_bytes
            )
        except BaseException:
            self._release_from(loop)
            raise
        future.add_done_callback(lambda _f: self._release_from(loop))
        return future

    def _release_from(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called from a thread (a worker finished, or _submit failed)."""
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing waits
            loop.call_soon_threadsafe(self._release)

    async def close(self) -> None:
        """Stop taking simulations and shut the workers down (each stops within its cap)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
