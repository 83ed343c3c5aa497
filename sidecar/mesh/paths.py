"""Request paths normalized the one way routes are matched (docs/MESH.md, "Paths").

The query is split off, each segment is percent-decoded (UTF-8, strictly), empty and '.'
segments are dropped, '..' removes the segment before it. What an upstream could read as another
path is refused rather than guessed: an encoded '/' or '\\' inside a segment, a raw '\\' (some
servers treat it as '/'), '..' above the root, a bad escape, invalid UTF-8, NUL, a '#'. A
trailing '/' is dropped with the empty segment it ends, so `/orders/1/` is `/orders/1`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from sidecar.mesh.refusals import BadRequest

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SHOWN = 64  # characters of a segment a message shows


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def split_target(target: str) -> tuple[str, str]:
    """The raw path and the raw query (without '?') of a request target."""
    path, _, query = target.partition("?")
    return path, query


def segments(path: str) -> tuple[str, ...]:
    """The decoded, normalized segments of a raw path (no query)."""
    if not path.startswith("/"):
        raise BadRequest(f"The request path {_shown(path)} must start with '/'")
    # Fast path: nothing to decode, no dot or empty segments, nothing to refuse. A dot segment
    # starts after a '/', so a dot inside a name ("report.csv") keeps the fast path.
    if (
        "%" not in path
        and "/." not in path
        and "//" not in path
        and "\\" not in path
        and "#" not in path
        and "\x00" not in path
        and ";" not in path
    ):
        if path == "/":
            return ()
        return tuple((path[1:-1] if path[-1] == "/" else path[1:]).split("/"))
    return _normalize(path)


def _normalize(path: str) -> tuple[str, ...]:
    if "#" in path:
        raise BadRequest("The request path must not contain a fragment ('#')")
    out: list[str] = []
    for raw in path[1:].split("/"):
        if ";" in raw:
            raise BadRequest(
                f"The request path segment {_shown(raw)} holds a ';': servlet containers drop "
                "what follows it as a path parameter, so it cannot be read one way only "
                "(write it %3B when it is data)"
            )
        seg = decode(raw, "path segment") if "%" in raw else raw
        if seg == "" or seg == ".":
            continue
        if seg == "..":
            if not out:
                raise BadRequest("The request path goes above the root with '..'")
            out.pop()
            continue
        if "/" in seg or "\\" in seg:
            raise BadRequest(
                f"The request path segment {_shown(raw)} holds a '/' or '\\' that an upstream "
                "could read as a separator"
            )
        if "\x00" in seg:
            raise BadRequest(f"The request path segment {_shown(raw)} holds a NUL character")
        out.append(seg)
    return tuple(out)


def decode(text: str, what: str, *, plus: bool = False) -> str:
    """Strict percent-decoding: a '%' not followed by two hex digits, or bytes that are not
    UTF-8, are refused. With ``plus``, '+' is a space (query strings, as HTML forms send them)."""
    if plus and "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    if _BAD_ESCAPE.search(text):
        raise BadRequest(f"The request {what} {_shown(text)} has a bad percent-escape")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"The request {what} {_shown(text)} is not UTF-8 once decoded") from None


def joined(segs: tuple[str, ...]) -> str:
    """The normalized path: '/' and the segments joined with '/'."""
    return "/" + "/".join(segs)
