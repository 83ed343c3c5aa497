"""The Envoy ext_authz mapping: routes from an HTTP request to an IAM action and resource."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sidecar.identity.load.toolkit import Reader, at

_ROUTE_KEYS = ("method", "host", "path", "action", "resource")
_HTTP_METHOD = re.compile(r"[A-Z]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")
_REQUEST_FIELDS = ("method", "host", "path")  # placeholders every ext_authz template may use
_ACTION = re.compile(r"[A-Za-z0-9.{}_-]+:[^:\s]+")


def read_ext_authz(r: Reader, value: object, path: str) -> dict[str, object] | None:
    """The mapping, validated and returned as plain data with defaults."""
    m = r.fields(value, path, ("routes", "default", "dry_run"))
    if m is None:
        return None
    routes = [
        route
        for item, where in r.each(m, "routes", path)
        if (route := _route(r, item, where)) is not None
    ]
    default: object = "deny"
    if "default" in m:
        default = _default(r, m["default"], at(path, "default"))
    return {"routes": routes, "default": default, "dry_run": r.boolean(m, "dry_run", path)}


def _route(r: Reader, value: object, path: str) -> dict[str, str] | None:
    route = r.fields(value, path, _ROUTE_KEYS, ("path", "action", "resource"))
    if route is None:
        return None
    out: dict[str, str] = {}
    for key in _ROUTE_KEYS:
        text = r.string(route, key, path, empty=False)
        if text is not None:
            out[key] = text
    method = out.get("method")
    if method is not None and not _HTTP_METHOD.fullmatch(method):
        r.issue(at(path, "method"), f"method {method!r} must be an upper-case HTTP method")
    captures = _captures(r, out["path"], at(path, "path")) if "path" in out else None
    if captures is not None:
        _template(r, out, path, captures)
    return out


def _default(r: Reader, raw: object, path: str) -> object:
    """'deny', or a fixed {action, resource} for requests no route matches."""
    if isinstance(raw, str):
        if raw != "deny":
            r.issue(path, f"default must be 'deny' or a map {{action, resource}}, got {raw!r}")
        return raw
    d = r.fields(raw, path, ("action", "resource"), ("action", "resource"))
    if d is None:
        return raw
    plain = {
        key: text
        for key in ("action", "resource")
        if (text := r.string(d, key, path, empty=False)) is not None
    }
    _template(r, plain, path, set())
    return plain


def _captures(r: Reader, template: str, path: str) -> set[str] | None:
    """The names a route path captures; None (reported) if the path is not valid."""
    if not template.startswith("/"):
        r.issue(path, f"route path {template!r} must start with '/'")
        return None
    segments = template[1:].split("/")
    names: set[str] = set()
    ok = True
    for i, segment in enumerate(segments):
        if "{" not in segment and "}" not in segment:
            continue
        match = _CAPTURE.fullmatch(segment)
        if match is None:
            r.issue(
                path,
                f"route path segment {segment!r}: a placeholder is a whole segment, "
                "{name} or {name+}",
            )
            ok = False
        elif match.group(2) and i != len(segments) - 1:
            r.issue(path, f"route path {template!r}: {segment} may only end the path")
            ok = False
        elif match.group(1) in _REQUEST_FIELDS:
            r.issue(
                path,
                f"route path {template!r}: {{{match.group(1)}}} names the request's "
                f"{match.group(1)}; choose another placeholder name",
            )
            ok = False
        elif match.group(1) in names:
            r.issue(path, f"route path {template!r}: {segment} appears twice")
            ok = False
        else:
            names.add(match.group(1))
    return names if ok else None


def _template(r: Reader, out: Mapping[str, str], path: str, captures: set[str]) -> None:
    """An action and resource to fill in: their placeholders must be known."""
    known = captures | set(_REQUEST_FIELDS)
    action = out.get("action")
    if action is not None and not _ACTION.fullmatch(action):
        r.issue(at(path, "action"), f"action {action!r} must be service:Action")
    resource = out.get("resource")
    if resource is not None and resource != "*" and not resource.startswith("arn:"):
        r.issue(at(path, "resource"), f"resource {resource!r} must be an ARN or '*'")
    for key in ("action", "resource"):
        for name in _PLACEHOLDER.findall(out.get(key, "")):
            if name not in known:
                r.issue(
                    at(path, key),
                    f"unknown placeholder {{{name}}} (known: "
                    f"{', '.join('{' + k + '}' for k in sorted(known))})",
                )
