"""The OIDC providers' signing keys (JWKS), read from files or fetched from URLs and cached.

This is the shell side of :class:`sidecar.sts.federation.oidc.KeySource`:

- ``jwks_file``: read once, and again whenever the file's mtime (or size, or inode) changes;
- ``jwks_url``: fetched with a timeout and a size cap, cached, refetched when the cache is older
  than ``max_age``;
- an unknown ``kid`` asks for a refresh, granted at most once per ``min_refresh_interval`` per
  JWKS source, so a flood of tokens with made-up kids cannot hammer the issuer;
- a failed fetch or an unreadable document raises IDPCommunicationError only when nothing is
  cached: otherwise the cached keys keep serving. After a failure with nothing cached, the next
  attempt waits ``retry_interval`` (callers fail fast meanwhile).

Only one thread fetches a given source at a time; while it does, the others answer from the
cache (or wait for it, when there is nothing cached yet).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sidecar.errors import IDPCommunicationError
from sidecar.identity.model import OidcProvider

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 1 << 20  # 1 MiB
COMMUNICATION_ERROR = (
    "Couldn't retrieve verification key from your identity provider, please reference "
    "AssumeRoleWithWebIdentity documentation for requirements"
)

# fetch(url, timeout seconds, max bytes) -> the response body. Raises OSError, ValueError or
# http.client.HTTPException.
Fetch = Callable[[str, float, int], bytes]


class _RefuseDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s), and never from https to http."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urlsplit(req.full_url).scheme, urlsplit(newurl).scheme
        if new not in ("http", "https") or (old == "https" and new != "https"):
            raise urllib.error.HTTPError(newurl, code, f"refused redirect to {new}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_RefuseDowngrade())


def fetch_url(url: str, timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_JWKS_BYTES) -> bytes:
    """GET ``url`` (http or https only). ``timeout`` bounds the connection and each read, and
    the whole body must arrive within it too; a body over ``max_bytes`` is refused."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "iam-sidecar"}
    )
    with _OPENER.open(request, timeout=timeout) as response:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ValueError(f"JWKS response is larger than {max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"JWKS response is larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"JWKS response took longer than {timeout} s")
            chunks.append(chunk)
    return b"".join(chunks)


def parse_jwks(body: bytes) -> list[dict[str, Any]]:
    """The ``keys`` of a JWK Set document (entries that are not objects are dropped)."""
    doc = json.loads(body.decode("utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWK Set: expected an object with a 'keys' list")
    return [k for k in doc["keys"] if isinstance(k, dict)]


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: list[dict[str, Any]] | None = None  # None: never loaded
    loaded_at: float = 0.0
    attempted_at: float | None = None  # last load attempt, successful or not
    file_state: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) when read
    last_error: str = ""


class JwksCache:
    """A KeySource for the OIDC providers of the world, shared by all requests."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        fetch: Fetch = fetch_url,
        min_refresh_interval: float = 30.0,
        *,
        timeout: float = FETCH_TIMEOUT,
        max_bytes: int = MAX_JWKS_BYTES,
        max_age: float = 600.0,
        retry_interval: float = 5.0,
    ) -> None:
        self._clock = clock
        self._fetch = fetch
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.retry_interval = retry_interval
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()
        self.loads = 0  # successful loads (for tests and metrics)
        self.failures = 0  # failed load attempts

    # -- KeySource ------------------------------------------------------------------------------

    def keys(
        self, provider: OidcProvider, kid: str | None, *, refresh: bool
    ) -> list[dict[str, Any]]:
        source = _source(provider)
        entry = self._entry(source)
        if not self._due(entry, source, refresh):
            return _answer(entry)
        if entry.keys is not None:
            if not entry.lock.acquire(blocking=False):
                return list(entry.keys)  # another thread is loading: serve the cache meanwhile
        elif not entry.lock.acquire(timeout=2 * self.timeout + 1):
            raise IDPCommunicationError(COMMUNICATION_ERROR, reason="idp_unreachable")
        try:
            if self._due(entry, source, refresh):  # still due now that we hold the lock?
                self._load(entry, source, provider)
            return _answer(entry)
        finally:
            entry.lock.release()

    # -- internals ------------------------------------------------------------------------------

    def _entry(self, source: str) -> _Entry:
        with self._guard:
            entry = self._entries.get(source)
            if entry is None:
                entry = self._entries[source] = _Entry()
            return entry

    def _due(self, entry: _Entry, source: str, refresh: bool) -> bool:
        """Should this call (re)load the source? Never-loaded sources and stale ones are
        retried at most once per ``retry_interval``; refreshes for an unknown kid at most once
        per ``min_refresh_interval``; a JWKS file is re-read as soon as it changes."""
        now = self._clock()
        since = None if entry.attempted_at is None else now - entry.attempted_at
        if entry.keys is None:
            return since is None or since >= self.retry_interval
        assert since is not None  # loaded, so attempted
        if refresh and since >= self.min_refresh_interval:
            return True
        if source.startswith("file:"):
            changed = _file_state(source[5:]) != entry.file_state
            return changed and (not entry.last_error or since >= self.retry_interval)
        stale = now - entry.loaded_at >= self.max_age
        return stale and since >= self.retry_interval

    def _load(self, entry: _Entry, source: str, provider: OidcProvider) -> None:
        entry.attempted_at = self._clock()
        kind, _, where = source.partition(":")
        try:
            if kind == "file":
                state = _file_state(where)
                body = _read_file(where, self.max_bytes)
            else:
                state = None
                body = self._fetch(where, self.timeout, self.max_bytes)
            keys = parse_jwks(body)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.failures += 1
            entry.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning(
                "JWKS of OIDC provider %s could not be loaded from %s: %s",
                provider.arn,
                where,
                entry.last_error,
            )
            return
        self.loads += 1
        entry.keys = keys
        entry.loaded_at = self._clock()
        entry.file_state = state
        entry.last_error = ""


def _answer(entry: _Entry) -> list[dict[str, Any]]:
    if entry.keys is None:
        raise IDPCommunicationError(COMMUNICATION_ERROR, reason="idp_unreachable")
    return list(entry.keys)


def _source(provider: OidcProvider) -> str:
    if provider.jwks_file:
        return "file:" + provider.jwks_file
    if provider.jwks_url:
        return "url:" + provider.jwks_url
    raise IDPCommunicationError(COMMUNICATION_ERROR, reason="no_jwks")


def _file_state(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read_file(path: str, max_bytes: int) -> bytes:
    with open(path, "rb") as f:
        body = f.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ValueError(f"JWKS file is larger than {max_bytes} bytes")
    return body


__all__ = ["COMMUNICATION_ERROR", "JwksCache", "fetch_url", "parse_jwks"]
