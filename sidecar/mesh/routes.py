"""The world file's ext_authz routes: an HTTP request -> an IAM action, resource and context.

Routes are compiled once (RouteTable.build) and tried in order; the first that matches the
method, the host and the normalized path wins (sidecar/mesh/paths.py). `{name}` captures one
decoded segment, `{name+}` the rest of the path (one segment or more, joined with '/'). No match
falls to the default: deny (None), or a fixed action and resource that may use `{method}`,
`{host}` (lower case, without the port) and `{path}` (the normalized path).

To keep resolve() cheap, the routes are indexed by method and by literal first segment: a
request tries only the routes that could match, still in the world file's order. And a request
whose route reads no context has an answer that depends on its method, host and path alone, so
that answer is remembered (a bounded memo of short keys, emptied when full; refusals are never
remembered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sidecar.mesh.context import ContextSpec, extract
from sidecar.mesh.paths import joined, segments, split_target
from sidecar.mesh.refusals import BadRequest, ResourceTooLong, RouteRefused
from sidecar.mesh.request import HttpRequest
from sidecar.mesh.templates import Template, compile_template
from sidecar.policy.context import Context

__all__ = [
    "MAX_RESOURCE_CHARS",
    "BadRequest",
    "HttpRequest",
    "ResourceTooLong",
    "RouteRefused",
    "RouteTable",
    "Target",
]

# An ARN is at most 2,048 characters (the engine's limit on Authorize, sidecar/engine/limits.py).
MAX_RESOURCE_CHARS = 2048
# The memo of resolved requests: at most this many, each with a key of at most
# MEMO_KEY_CHARS characters (so at most a few MiB however the requests are chosen).
MEMO_ENTRIES = 4096
MEMO_KEY_CHARS = 512
_NOT_MEMO = object()  # a memo miss (None is a remembered "no route, default deny")


class Target(NamedTuple):
    """What a request maps to. A tuple, made on every Check (a frozen dataclass costs more)."""

    action: str
    resource: str
    context: Context | None  # the route's declared keys the request gives; None if none
    route: str  # "routes[2]" or "default", for logs
    headers_read: tuple[str, ...] = ()  # the headers the context comes from (lower case)


@dataclass(frozen=True, slots=True)
class _Route:
    label: str
    method: str | None
    host: str | None  # lower case
    size: int  # segments in the template ({name+} counts one)
    first: str | None  # the literal first segment; None for a placeholder or the root
    literals: tuple[tuple[int, str], ...]  # (index, text) to compare
    captures: tuple[tuple[int, str], ...]  # (index, name) of {name}
    greedy: str | None  # the name of a final {name+}
    action: Template
    resource: Template
    context: tuple[ContextSpec, ...]
    headers_read: tuple[str, ...]  # names of the headers `context` reads
    request_fields: bool  # does a template use {method}, {host} or {path}?

    def matches(self, segs: tuple[str, ...], n: int) -> bool:
        if n != self.size and (self.greedy is None or n < self.size):
            return False
        for i, text in self.literals:  # noqa: SIM110 (a loop: no generator on the hot path)
            if segs[i] != text:
                return False
        return True


def _compile_route(label: str, spec: Mapping[str, Any]) -> _Route:
    path = str(spec["path"])
    parts = [] if path == "/" else path[1:].split("/")
    literals: list[tuple[int, str]] = []
    captures: list[tuple[int, str]] = []
    greedy = None
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                greedy = name[:-1]
            else:
                captures.append((i, name))
        else:
            literals.append((i, part))
    action = compile_template(str(spec["action"]), action=True)
    resource = compile_template(str(spec["resource"]), action=False)
    specs = tuple(ContextSpec.of(e) for e in spec.get("context", ()))
    method = spec.get("method")
    host = spec.get("host")
    return _Route(
        label=label,
        method=str(method) if method is not None else None,
        host=str(host).lower().removesuffix(".") if host is not None else None,
        size=len(parts),
        first=literals[0][1] if literals and literals[0][0] == 0 else ("" if not parts else None),
        literals=tuple(literals),
        captures=tuple(captures),
        greedy=greedy,
        action=action,
        resource=resource,
        context=specs,
        headers_read=tuple(s.name for s in specs if not s.query),
        request_fields=bool((action.names | resource.names) & {"method", "host", "path"}),
    )


def request_host(authority: str) -> str:
    """The host of an :authority, lower case, without its port (IPv6 keeps its brackets)."""
    host = authority.lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        host = name
    # "orders.example." is the fully qualified spelling of "orders.example" (RFC 1034, 3.1).
    return host[:-1] if host.endswith(".") else host


_Bucket = tuple[dict[str, tuple[_Route, ...]], tuple[_Route, ...]]


class RouteTable:
    """The compiled ext_authz block of one world snapshot."""

    __slots__ = (
        "_any",
        "_default",
        "_index",
        "_memo",
        "dry_run",
        "envoy_identities",
        "routes",
        "strip_credentials",
    )

    def __init__(
        self,
        routes: Sequence[_Route],
        default: _Route | None,
        *,
        dry_run: bool = False,
        strip_credentials: bool = False,
        envoy_identities: frozenset[str] = frozenset(),
    ) -> None:
        self.routes = tuple(routes)
        self._default = default
        self.dry_run = dry_run
        self.strip_credentials = strip_credentials
        self.envoy_identities = envoy_identities
        methods = {r.method for r in self.routes if r.method is not None}
        self._index: dict[str, _Bucket] = {m: self._bucket(m) for m in methods}
        self._any = self._bucket(None)
        self._memo: dict[tuple[str, str, str], Target | None] = {}

    @classmethod
    def build(cls, ext_authz: Mapping[str, object] | None) -> RouteTable:
        """From World.ext_authz, validated plain data (sidecar/identity/load/ext_authz.py);
        None: no routes and the default is deny."""
        if ext_authz is None:
            return cls((), None)
        specs = cast(Sequence[Mapping[str, Any]], ext_authz.get("routes", ()))
        routes = [_compile_route(f"routes[{i}]", spec) for i, spec in enumerate(specs)]
        raw_default = ext_authz.get("default", "deny")
        default = None
        if isinstance(raw_default, Mapping):
            default = _compile_route("default", {**raw_default, "path": "/"})
        return cls(
            routes,
            default,
            dry_run=bool(ext_authz.get("dry_run", False)),
            strip_credentials=bool(ext_authz.get("strip_credentials", False)),
            envoy_identities=frozenset(cast(Sequence[str], ext_authz.get("envoy_identities", ()))),
        )

    def _bucket(self, method: str | None) -> _Bucket:
        """The routes a request with ``method`` may match (None: a method no route names),
        by literal first segment, and those whose first segment is a placeholder."""
        routes = [r for r in self.routes if r.method is None or r.method == method]
        open_first = tuple(r for r in routes if r.first is None)
        firsts = {r.first for r in routes if r.first is not None}
        by_first = {f: tuple(r for r in routes if r.first is None or r.first == f) for f in firsts}
        return by_first, open_first

    def resolve(self, request: HttpRequest) -> Target | None:
        """The action, resource and context of ``request``; None when no route matches and
        the default is deny. Raises BadRequest (400) and ResourceTooLong (403)."""
        return self.resolve_fields(*request)

    def resolve_fields(
        self, method: str, host: str, path: str, headers: Mapping[str, str]
    ) -> Target | None:
        """``resolve`` of the request with these fields: a remembered answer is found
        without building an HttpRequest (Check's hot path)."""
        key = (method, host, path)
        found = self._memo.get(key, _NOT_MEMO)
        if found is not _NOT_MEMO:
            return found  # type: ignore[return-value]
        route, target = self._resolve(HttpRequest(method, host, path, headers))
        if (
            (route is None or not route.context)  # else it depends on the query or headers
            and len(path) + len(host) + len(method) <= MEMO_KEY_CHARS
        ):
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            self._memo[key] = target
        return target

    def _resolve(self, request: HttpRequest) -> tuple[_Route | None, Target | None]:
        """The route that decides ``request`` (None: the default is deny) and its target."""
        path, query = split_target(request.path)
        segs = segments(path)
        n = len(segs)
        # Methods are matched upper-cased: Django and Werkzeug upper-case the method they
        # dispatch on, and Envoy forwards HTTP/2's `:method: delete` as it is.
        method = request.method.upper()
        by_first, open_first = self._index.get(method, self._any)
        host: str | None = None
        for route in by_first.get(segs[0] if n else "", open_first):
            if not route.matches(segs, n):
                continue
            if route.host is not None:
                if host is None:
                    host = request_host(request.host)
                if host != route.host:
                    continue
            return route, self._target(route, request, segs, query, host)
        if self._default is None:
            return None, None
        return self._default, self._target(self._default, request, segs, query, host)

    def _target(
        self,
        route: _Route,
        request: HttpRequest,
        segs: tuple[str, ...],
        query: str,
        host: str | None,
    ) -> Target:
        values: dict[str, str] = {}
        for i, name in route.captures:  # a loop: cheaper than a comprehension on 3.11
            values[name] = segs[i]
        if route.greedy is not None:
            values[route.greedy] = "/".join(segs[route.size - 1 :])
        if route.request_fields:
            values["method"] = request.method.upper()
            values["host"] = host if host is not None else request_host(request.host)
            values["path"] = joined(segs)
        resource = route.resource.fill(values)
        if len(resource) > MAX_RESOURCE_CHARS:
            raise ResourceTooLong(
                f"Access denied: the request's resource is {len(resource)} characters long, "
                f"and an ARN has at most {MAX_RESOURCE_CHARS}"
            )
        context = extract(route.context, query, request.headers) if route.context else None
        return Target(route.action.fill(values), resource, context, route.label, route.headers_read)
