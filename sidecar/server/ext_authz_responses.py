"""Check's answers to Envoy, serialized (docs/API.md §1.5).

- OK: forward the request, with `x-iam-principal-arn`, `x-iam-session-name` and `x-iam-action`
  set for the upstream (overwriting any the client sent; one the sidecar has no value for is
  removed, so a client can never supply it), and the credential headers removed when the world
  says `strip_credentials: true`.
- Refused: Envoy answers the client itself with the status (400, 401 or 403), a JSON body
  `{"Error": {"Code": ..., "Message": ...}}` carrying the AWS error code and message, and
  `content-type: application/json`.

OK answers repeat (one per principal and action), so their bytes are kept in a small bounded
map instead of being rebuilt per request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote

from google.rpc import code_pb2, status_pb2

from sidecar.api.envoy.config.core.v3 import base_pb2
from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as pb
from sidecar.api.envoy.type.v3 import http_status_pb2

PRINCIPAL_HEADER = "x-iam-principal-arn"
SESSION_HEADER = "x-iam-session-name"
ACTION_HEADER = "x-iam-action"
# What strip_credentials removes: a bearer token or SigV4's headers.
CREDENTIAL_HEADERS = ("authorization", "x-amz-security-token", "x-amz-date", "x-amz-content-sha256")


def _spellings(name: str) -> set[str]:
    """``name`` with each '-' written '-' or '_', itself excluded."""
    out = {""}
    for i, part in enumerate(name.split("-")):
        out = {o + sep + part for o in out for sep in (("",) if i == 0 else ("-", "_"))}
    return out - {name}


# Other spellings of the x-iam-* names: CGI-style servers (WSGI, Rack, PHP) read `x_iam_...` as
# the variable `x-iam-...` becomes, and Envoy forwards underscores by default.
FORGED_SPELLINGS = frozenset(
    s for name in (PRINCIPAL_HEADER, SESSION_HEADER, ACTION_HEADER) for s in _spellings(name)
)
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
OK_CACHE_ENTRIES = 10_000
OK_CACHE_BYTES = 8 << 20
_ENTRY_OVERHEAD = 200  # key tuple and LRU bookkeeping, beyond the bytes themselves
# Printable ASCII other than "%" passes unchanged into a header value.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")

_JSON = base_pb2.HeaderValueOption(
    header=base_pb2.HeaderValue(key="content-type", value="application/json"),
    append_action=OVERWRITE,
)
# HTTP status -> the gRPC code of CheckResponse.status (any code but OK denies).
_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
}


def header_value(value: str) -> str:
    """``value`` as an HTTP header value: control and non-ASCII characters (from decoded path
    segments) are percent-encoded, so no value can end a header or be refused by Envoy."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe=_SAFE)


def _set(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, value=header_value(value)), append_action=OVERWRITE
    )


def ok_response(
    principal_arn: str,
    session_name: str,
    action: str,
    strip: bool,
    forged: tuple[str, ...] = (),
) -> bytes:
    """Allow: the x-iam-* headers with the values known (an empty value removes the header),
    and ``forged`` (other spellings of them the client sent) removed."""
    headers = []
    remove = list(forged)
    for name, value in (
        (PRINCIPAL_HEADER, principal_arn),
        (SESSION_HEADER, session_name),
        (ACTION_HEADER, action),
    ):
        if value:
            headers.append(_set(name, value))
        else:
            remove.append(name)
    if strip:
        remove.extend(CREDENTIAL_HEADERS)
    return pb.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=pb.OkHttpResponse(headers=headers, headers_to_remove=remove),
    ).SerializeToString()


def denied_response(http_status: int, code: str, message: str) -> bytes:
    """Refuse: Envoy answers ``http_status`` with the AWS error as JSON."""
    body = json.dumps({"Error": {"Code": code, "Message": message}}, ensure_ascii=False)
    return pb.CheckResponse(
        status=status_pb2.Status(code=_GRPC_CODES.get(http_status, code_pb2.PERMISSION_DENIED)),
        denied_response=pb.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status),  # type: ignore[arg-type]
            headers=[_JSON],
            body=body,
        ),
    ).SerializeToString()


def forged_spellings(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The request's headers that spell an x-iam-* name another way (names lower-case)."""
    found = FORGED_SPELLINGS.intersection(headers)
    return tuple(sorted(found)) if found else ()


def session_name_of(principal_arn: str) -> str:
    """The session name of an assumed-role ARN (`.../assumed-role/ROLE/SESSION`)."""
    return principal_arn.rsplit("/", 1)[-1]


class OkResponses:
    """OK answers by (principal, is a session, action, strip). A plain dict, emptied when it
    reaches OK_CACHE_ENTRIES or OK_CACHE_BYTES: a hit costs one lookup on the hot path."""

    def __init__(
        self, max_entries: int = OK_CACHE_ENTRIES, max_bytes: int = OK_CACHE_BYTES
    ) -> None:
        self._kept: dict[tuple[str, bool, str, bool], bytes] = {}
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get(self, principal_arn: str, is_session: bool, action: str, strip: bool) -> bytes:
        key = (principal_arn, is_session, action, strip)
        found = self._kept.get(key)
        if found is None:
            session = session_name_of(principal_arn) if is_session else ""
            found = ok_response(principal_arn, session, action, strip)
            weight = len(found) + _ENTRY_OVERHEAD
            if len(self._kept) >= self.max_entries or self._bytes + weight > self.max_bytes:
                self._kept.clear()
                self._bytes = 0
            self._kept[key] = found
            self._bytes += weight
        return found

    def __len__(self) -> int:
        return len(self._kept)
