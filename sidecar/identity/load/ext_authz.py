"""The Envoy ext_authz mapping: routes from an HTTP request to an IAM action and resource.

Returned as plain data with defaults filled in; sidecar/mesh/routes.py compiles it. Read after
the accounts, so that a route's context key can be checked against the world's OIDC providers
(their claim keys belong to the sidecar, like every principal, session and network key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sidecar.identity.load.state import Loader
from sidecar.identity.load.toolkit import at
from sidecar.policy.entries import ContextType
from sidecar.policy.key_owners import caller_may_give, spelling
from sidecar.policy.principals import BUILT_IN_PROVIDERS

_TOP_KEYS = ("routes", "default", "dry_run", "strip_credentials", "envoy_identities")
_ROUTE_KEYS = ("method", "host", "path", "action", "resource", "context")
_TEXT_KEYS = ("method", "host", "path", "action", "resource")
_CONTEXT_KEYS = ("from", "name", "key", "type")
_HTTP_METHOD = re.compile(r"[A-Z]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")
_REQUEST_FIELDS = ("method", "host", "path")  # placeholders every ext_authz template may use
_ACTION = re.compile(r"[A-Za-z0-9.{}_-]+:[^:\s]+")
# A host name or an IPv4 address, or a bracketed IPv6 address; no port (the request's is ignored).
_HOST = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\]")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_CONTEXT_KEY = re.compile(r"[^:\s]+:\S+")
_MAX_KEY_CHARS = 256  # a condition key name, as Authorize accepts it (docs/SERVER.md)
# Credentials never become condition context: they would reach logs and caches.
_CREDENTIAL_HEADERS = ("authorization", "x-amz-security-token", "cookie", "proxy-authorization")
CONTEXT_TYPES = tuple(t.name for t in ContextType if t is not ContextType.UNSPECIFIED)


def read_ext_authz(ld: Loader, value: object, path: str) -> dict[str, object] | None:
    """The mapping, validated and returned as plain data with defaults."""
    m = ld.fields(value, path, _TOP_KEYS)
    if m is None:
        return None
    prefixes = _federated_prefixes(ld)
    routes = [
        route
        for item, where in ld.each(m, "routes", path)
        if (route := _route(ld, item, where, prefixes)) is not None
    ]
    default: object = "deny"
    if "default" in m:
        default = _default(ld, m["default"], at(path, "default"))
    return {
        "routes": routes,
        "default": default,
        "dry_run": ld.boolean(m, "dry_run", path),
        "strip_credentials": ld.boolean(m, "strip_credentials", path),
        "envoy_identities": _envoy_identities(ld, m, path),
    }


def _federated_prefixes(ld: Loader) -> tuple[str, ...]:
    """The claim-key prefixes of identity providers (``accounts.google.com:``, an issuer)."""
    prefixes = [p + ":" for p in BUILT_IN_PROVIDERS]
    for account in ld.accounts.values():
        prefixes += [p.key_prefix.lower() + ":" for p in account.oidc_providers.values()]
    return tuple(prefixes)


def _route(
    ld: Loader, value: object, path: str, prefixes: tuple[str, ...]
) -> dict[str, object] | None:
    route = ld.fields(value, path, _ROUTE_KEYS, ("path", "action", "resource"))
    if route is None:
        return None
    out: dict[str, str] = {}
    for key in _TEXT_KEYS:
        text = ld.string(route, key, path, empty=False)
        if text is not None:
            out[key] = text
    method = out.get("method")
    if method is not None and not _HTTP_METHOD.fullmatch(method):
        ld.issue(at(path, "method"), f"method {method!r} must be an upper-case HTTP method")
    host = out.get("host")
    if host is not None and not _HOST.fullmatch(host):
        ld.issue(
            at(path, "host"),
            f"host {host!r} must be a host name or address without a port "
            "(the request's port is ignored)",
        )
    captures = _captures(ld, out["path"], at(path, "path")) if "path" in out else None
    if captures is not None:
        _template(ld, out, path, captures)
    return {**out, "context": _context(ld, route, path, prefixes)}


def _context(
    ld: Loader, route: Mapping[str, object], path: str, prefixes: tuple[str, ...]
) -> list[dict[str, str]]:
    """The condition keys a route takes from the request's query parameters and headers."""
    out: list[dict[str, str]] = []
    keys: dict[str, str] = {}  # lowercased key -> where it is first declared
    for item, where in ld.each(route, "context", path):
        entry = ld.fields(item, where, _CONTEXT_KEYS, ("from", "name", "key"))
        if entry is None:
            continue
        source = ld.string(entry, "from", where)
        name = ld.string(entry, "name", where, empty=False)
        key = ld.string(entry, "key", where, empty=False)
        ctype = ld.string(entry, "type", where) if "type" in entry else "STRING"
        ok = source is not None and name is not None and key is not None and ctype is not None
        if source is not None and source not in ("query", "header"):
            ld.issue(at(where, "from"), f"from must be 'query' or 'header', got {source!r}")
            ok = False
        if source == "header" and name is not None:
            ok = _header_name(ld, name, at(where, "name")) and ok
        if key is not None:
            ok = _key(ld, key, at(where, "key"), prefixes, keys) and ok
        if ctype is not None and ctype not in CONTEXT_TYPES:
            ld.issue(
                at(where, "type"), f"unknown type {ctype!r} (one of {', '.join(CONTEXT_TYPES)})"
            )
            ok = False
        if ok and source and name and key and ctype:
            out.append({"from": source, "name": name, "key": key, "type": ctype})
    return out


def _header_name(ld: Loader, name: str, where: str) -> bool:
    if not _HEADER_NAME.fullmatch(name):
        ld.issue(where, f"header name {name!r} is not an HTTP header name")
        return False
    if name.lower() in _CREDENTIAL_HEADERS:
        ld.issue(where, f"header {name!r} carries credentials and cannot become condition context")
        return False
    return True


def _key(ld: Loader, key: str, where: str, prefixes: tuple[str, ...], seen: dict[str, str]) -> bool:
    if len(key) > _MAX_KEY_CHARS or not _CONTEXT_KEY.fullmatch(key):
        ld.issue(
            where,
            f"condition key {key[:64]!r} must be prefix:name, at most {_MAX_KEY_CHARS} characters",
        )
        return False
    if not caller_may_give(key, prefixes):
        ld.issue(
            where,
            f"condition key {spelling(key)} is set by the sidecar, never taken from a request "
            "(a route may give only keys that describe the request or its target)",
        )
        return False
    lower = key.lower()
    if lower in seen:
        ld.issue(where, f"condition key {key!r} is already given by {seen[lower]}")
        return False
    seen[lower] = where
    return True


def _envoy_identities(ld: Loader, m: Mapping[str, object], path: str) -> list[str]:
    """SPIFFE ids of the Envoys that may call Check over mTLS (central mode)."""
    out: list[str] = []
    for sid, where in ld.each(m, "envoy_identities", path):
        if not isinstance(sid, str) or not sid.startswith("spiffe://") or sid == "spiffe://":
            ld.issue(where, f"expected a SPIFFE id spiffe://..., got {sid!r}")
        elif sid in out:
            ld.issue(where, f"duplicate SPIFFE id {sid!r}")
        else:
            out.append(sid)
    return out


def _default(ld: Loader, raw: object, path: str) -> object:
    """'deny', or a fixed {action, resource} for requests no route matches."""
    if isinstance(raw, str):
        if raw != "deny":
            ld.issue(path, f"default must be 'deny' or a map {{action, resource}}, got {raw!r}")
        return raw
    d = ld.fields(raw, path, ("action", "resource"), ("action", "resource"))
    if d is None:
        return raw
    plain = {
        key: text
        for key in ("action", "resource")
        if (text := ld.string(d, key, path, empty=False)) is not None
    }
    _template(ld, plain, path, set())
    return plain


def _captures(ld: Loader, template: str, path: str) -> set[str] | None:
    """The names a route path captures; None (reported) if the path is not valid. Literal
    segments are compared with the request's decoded, normalized segments, so they hold no
    escapes, no dot segments and no empty segments."""
    if not template.startswith("/"):
        ld.issue(path, f"route path {template!r} must start with '/'")
        return None
    if template == "/":
        return set()
    segments = template[1:].split("/")
    names: set[str] = set()
    ok = True
    for i, segment in enumerate(segments):
        if segment in ("", ".", "..") or any(c in segment for c in "%?#\\"):
            ld.issue(
                path,
                f"route path {template!r}: segment {segment!r} would never match a normalized "
                "path (no empty, '.' or '..' segments; no '%', '?', '#' or '\\')",
            )
            ok = False
            continue
        if "{" not in segment and "}" not in segment:
            continue
        match = _CAPTURE.fullmatch(segment)
        if match is None:
            ld.issue(
                path,
                f"route path segment {segment!r}: a placeholder is a whole segment, "
                "{name} or {name+}",
            )
            ok = False
        elif match.group(2) and i != len(segments) - 1:
            ld.issue(path, f"route path {template!r}: {segment} may only end the path")
            ok = False
        elif match.group(1) in _REQUEST_FIELDS:
            ld.issue(
                path,
                f"route path {template!r}: {{{match.group(1)}}} names the request's "
                f"{match.group(1)}; choose another placeholder name",
            )
            ok = False
        elif match.group(1) in names:
            ld.issue(path, f"route path {template!r}: {segment} appears twice")
            ok = False
        else:
            names.add(match.group(1))
    return names if ok else None


def _template(ld: Loader, out: Mapping[str, str], path: str, captures: set[str]) -> None:
    """An action and resource to fill in: their placeholders must be known."""
    known = captures | set(_REQUEST_FIELDS)
    action = out.get("action")
    if action is not None and not _ACTION.fullmatch(action):
        ld.issue(at(path, "action"), f"action {action!r} must be service:Action")
    resource = out.get("resource")
    if resource is not None and resource != "*" and not resource.startswith("arn:"):
        ld.issue(at(path, "resource"), f"resource {resource!r} must be an ARN or '*'")
    for key in ("action", "resource"):
        for name in _PLACEHOLDER.findall(out.get(key, "")):
            if name not in known:
                ld.issue(
                    at(path, key),
                    f"unknown placeholder {{{name}}} (known: "
                    f"{', '.join('{' + k + '}' for k in sorted(known))})",
                )
