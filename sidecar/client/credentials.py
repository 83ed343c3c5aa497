"""Role credentials that refresh themselves, with botocore's advisory and mandatory windows.

In the advisory window (``advisory_refresh`` seconds before expiry) one caller refreshes while
the others keep using the current credentials; if that refresh fails the current ones are kept.
In the mandatory window (``mandatory_refresh`` seconds before expiry) every caller waits for the
refresh, and its failure is raised. Either way one AssumeRole is made per refresh, however many
threads (``RoleCredentials``) or tasks (``AsyncRoleCredentials``) ask at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sidecar.client.errors import SidecarError
from sidecar.client.results import AssumeRoleResult, Credentials

if TYPE_CHECKING:
    from botocore.credentials import RefreshableCredentials

DEFAULT_DURATION = 3600
DEFAULT_ADVISORY = 15 * 60  # botocore's windows
DEFAULT_MANDATORY = 10 * 60


class Windows:
    def __init__(
        self, duration_seconds: int, advisory: float, mandatory: float, clock: Callable[[], float]
    ) -> None:
        if not 0 <= mandatory <= advisory < duration_seconds:
            raise ValueError(
                "need 0 <= mandatory_refresh <= advisory_refresh < duration_seconds, got "
                f"{mandatory}, {advisory}, {duration_seconds}"
            )
        self.duration_seconds = duration_seconds
        self.advisory = advisory
        self.mandatory = mandatory
        self.clock = clock

    def remaining(self, creds: Credentials) -> float:
        return creds.expiration.timestamp() - self.clock()


class RoleCredentials:
    """``Client.role_credentials(...)``: ``.get()`` gives current credentials; ``.botocore()``
    a botocore ``RefreshableCredentials`` backed by the same refreshes."""

    def __init__(
        self,
        assume: Callable[[int], AssumeRoleResult],
        *,
        duration_seconds: int = DEFAULT_DURATION,
        advisory_refresh: float = DEFAULT_ADVISORY,
        mandatory_refresh: float = DEFAULT_MANDATORY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._assume = assume
        self.windows = Windows(duration_seconds, advisory_refresh, mandatory_refresh, clock)
        self._creds: Credentials | None = None
        self._lock = threading.Lock()

    def current(self) -> Credentials | None:
        """The credentials held now, without refreshing."""
        return self._creds

    def _refresh(self) -> Credentials:
        creds = self._assume(self.windows.duration_seconds).credentials
        self._creds = creds
        return creds

    def get(self) -> Credentials:
        held = self._creds
        if held is None or self.windows.remaining(held) <= self.windows.mandatory:
            with self._lock:
                held = self._creds  # another thread may have refreshed while this one waited
                if held is None or self.windows.remaining(held) <= self.windows.mandatory:
                    held = self._refresh()
            return held
        if self.windows.remaining(held) <= self.windows.advisory and self._lock.acquire(
            blocking=False
        ):
            try:
                if self._creds is held:
                    # Still valid for a while: on failure keep them, the next caller tries again.
                    with contextlib.suppress(SidecarError):
                        held = self._refresh()
            finally:
                self._lock.release()
        return self._creds or held

    def botocore(self) -> RefreshableCredentials:
        """For boto3/botocore code: ``session._credentials = creds.botocore()`` or
        ``botocore.session.Session()._credentials``."""
        from botocore.credentials import RefreshableCredentials

        def metadata() -> dict[str, Any]:
            c = self.get()
            return {
                "access_key": c.access_key_id,
                "secret_key": c.secret_access_key,
                "token": c.session_token,
                "expiry_time": c.expiration.isoformat(),
            }

        c = self.get()
        # botocore decides when to call refresh_using with its own windows and clock: ours.
        return RefreshableCredentials(
            access_key=c.access_key_id,
            secret_key=c.secret_access_key,
            token=c.session_token,
            expiry_time=c.expiration,
            refresh_using=metadata,
            method="iam-sidecar-assume-role",
            time_fetcher=lambda: datetime.fromtimestamp(self.windows.clock(), UTC),
            advisory_timeout=self.windows.advisory,
            mandatory_timeout=self.windows.mandatory,
        )


class AsyncRoleCredentials:
    """``AsyncClient.role_credentials(...)``: ``await .get()``; one AssumeRole per refresh across
    the tasks of an event loop."""

    def __init__(
        self,
        assume: Callable[[int], Awaitable[AssumeRoleResult]],
        *,
        duration_seconds: int = DEFAULT_DURATION,
        advisory_refresh: float = DEFAULT_ADVISORY,
        mandatory_refresh: float = DEFAULT_MANDATORY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._assume = assume
        self.windows = Windows(duration_seconds, advisory_refresh, mandatory_refresh, clock)
        self._creds: Credentials | None = None
        self._lock = asyncio.Lock()

    def current(self) -> Credentials | None:
        return self._creds

    async def _refresh(self) -> Credentials:
        creds = (await self._assume(self.windows.duration_seconds)).credentials
        self._creds = creds
        return creds

    async def get(self) -> Credentials:
        held = self._creds
        if held is None or self.windows.remaining(held) <= self.windows.mandatory:
            async with self._lock:
                held = self._creds
                if held is None or self.windows.remaining(held) <= self.windows.mandatory:
                    held = await self._refresh()
            return held
        if self.windows.remaining(held) <= self.windows.advisory and not self._lock.locked():
            async with self._lock:
                if self._creds is held:
                    with contextlib.suppress(SidecarError):
                        held = await self._refresh()
        return self._creds or held
