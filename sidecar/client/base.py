"""What the sync and asyncio clients share: channel options, call metadata, deadlines."""

from __future__ import annotations

from sidecar.client.calls import Call
from sidecar.client.results import Credentials
from sidecar.client.retry import RetryPolicy
from sidecar.client.sigv4 import sign_call

# gRPC's own reconnect backoff starts at 1 s and grows to 120 s: a channel that saw the sidecar
# down would keep failing fast long after it came back. Short reconnect waits let the client's
# retries (retry.py) see a restarted sidecar within a few hundred milliseconds.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def channel_target(target: str) -> str:
    """``host:port`` or ``unix:///path`` (gRPC's own target syntax, checked here)."""
    if target.startswith("unix:"):
        if len(target) == len("unix:"):
            raise ValueError(f"target must be host:port or unix:///path, not {target!r}")
        return target
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"target must be host:port or unix:///path, not {target!r}")
    return target


class ClientBase:
    def __init__(
        self,
        *,
        access_key_id: str | None,
        secret_access_key: str | None,
        session_token: str | None,
        region: str,
        timeout: float,
        retries: RetryPolicy,
        refreshing: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if bool(access_key_id) != bool(secret_access_key):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        if refreshing and (access_key_id or session_token):
            raise ValueError("give credentials or keys/session_token, not both")
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.region = region
        self.timeout = timeout
        self.retries = retries

    def metadata(
        self, call: Call, body: bytes, creds: Credentials | None = None
    ) -> tuple[tuple[str, str], ...]:
        """SigV4 with user keys (signed again on each attempt: fresh x-amz-date), else
        ``authorization: Bearer <session token>``, else nothing. ``creds``: the current
        refreshing credentials, which sign with their temporary keys."""
        if not call.sign:
            return ()
        keys: tuple[str, str, str | None]
        if creds is not None:
            keys = (creds.access_key_id, creds.secret_access_key, creds.session_token)
        elif self.access_key_id and self.secret_access_key:
            keys = (self.access_key_id, self.secret_access_key, self.session_token)
        elif self.session_token:
            return (("authorization", f"Bearer {self.session_token}"),)
        else:
            return ()
        key_id, secret, token = keys
        return tuple(
            sign_call(
                call.path,
                body,
                access_key_id=key_id,
                secret_access_key=secret,
                session_token=token,
                region=self.region,
            )
        )
