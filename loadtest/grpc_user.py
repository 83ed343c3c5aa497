"""A locust User that speaks gRPC (after locust's ``examples/grpc``).

A plain ``grpc.UnaryUnaryClientInterceptor`` times each call with ``perf_counter``, forces its
completion with ``.result()`` and fires ``environment.events.request`` once per call, with
``request_type="grpc"``, the name ``"<RPC> <scenario>"`` (``Authorize [cache-hit]``), the time
in ms, the response's size and any exception. A call whose answer is wrong (a decision other
than the one expected) is reported with a ``WrongAnswer`` exception, so locust counts it as a
failure, not a success.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User
from locust.env import Environment
from locust.exception import LocustError

# gRPC's own event loop must cooperate with gevent's (locust runs every user on a greenlet).
grpc_gevent.init_gevent()

# Returns what is wrong with an answer, or None when it is right.
Check = Callable[[Any], str | None]


class WrongAnswer(Exception):
    """The call succeeded on the wire, but its answer is not the one expected."""


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Reports every unary call to locust. One per user: ``GrpcUser.call`` sets ``scenario``
    and ``check`` just before each call, and a user's calls never overlap."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.scenario = ""
        self.check: Check | None = None

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = str(client_call_details.method)
        rpc = method.rsplit("/", 1)[-1]
        name = f"{rpc} [{self.scenario}]" if self.scenario else rpc
        response: Any = None
        exception: BaseException | None = None
        length = 0
        start = time.perf_counter()
        outcome = continuation(client_call_details, request)
        try:
            response = outcome.result()  # forces completion; raises the RpcError of a failure
        except grpc.RpcError as err:
            exception = err
        elapsed_ms = (time.perf_counter() - start) * 1000
        if exception is None:
            length = response.ByteSize() if hasattr(response, "ByteSize") else len(response)
            problem = self.check(response) if self.check is not None else None
            if problem:
                exception = WrongAnswer(problem)
        self.env.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            response=response,
            context=None,
            exception=exception,
        )
        return outcome


class GrpcUser(User):  # type: ignore[misc]
    """Abstract: one channel (and one interceptor) per simulated user. ``--host`` is the
    server's ``host:port`` (a ``grpc://`` prefix is accepted)."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if not self.host:
            raise LocustError("set --host to the sidecar's gRPC address (host:port)")
        target = self.host.removeprefix("grpc://").rstrip("/")
        self._interceptor = LocustInterceptor(environment)
        self._raw_channel = grpc.insecure_channel(target)
        self.channel = grpc.intercept_channel(self._raw_channel, self._interceptor)

    def call(
        self,
        method: Any,
        request: Any,
        scenario: str,
        *,
        check: Check | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float = 10.0,
    ) -> Any:
        """Call ``method`` (a multicallable of ``self.channel``); None when the call failed
        (already reported to locust)."""
        self._interceptor.scenario = scenario
        self._interceptor.check = check
        try:
            return method(request, metadata=tuple(metadata) or None, timeout=timeout)
        except grpc.RpcError:
            return None
        finally:
            self._interceptor.scenario = ""
            self._interceptor.check = None

    def on_stop(self) -> None:
        self._raw_channel.close()
