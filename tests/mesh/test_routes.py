"""The ext_authz route table (sidecar/mesh/routes.py): an HTTP request as Envoy reports it ->
the IAM action, resource and request context, built from world-file data the loader validated."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.engine.limits import MAX_CONTEXT_VALUE_CHARS
from sidecar.engine.limits import MAX_RESOURCE_CHARS as ENGINE_MAX_RESOURCE_CHARS
from sidecar.identity.load.build import build_world
from sidecar.mesh.context import MAX_VALUE_CHARS
from sidecar.mesh.routes import (
    MAX_RESOURCE_CHARS,
    MEMO_ENTRIES,
    MEMO_KEY_CHARS,
    BadRequest,
    HttpRequest,
    ResourceTooLong,
    RouteRefused,
    RouteTable,
    Target,
    request_host,
)
from sidecar.mesh.templates import compile_template


def table(ext_authz: dict[str, Any]) -> RouteTable:
    """A RouteTable from an ext_authz block, through the world loader (as the server does)."""
    doc = {"accounts": [{"id": "111111111111"}], "ext_authz": ext_authz}
    world = build_world(doc, source="test", secrets=lambda kind, ref: None)
    return RouteTable.build(world.ext_authz)


def req(
    method: str, path: str, host: str = "svc.example", headers: dict[str, str] | None = None
) -> HttpRequest:
    return HttpRequest(method=method, host=host, path=path, headers=headers or {})


ORDER = "arn:aws:orders:::order/{id}"
ROUTES = [
    {"method": "GET", "host": "orders.example", "path": "/orders/{id}",
     "action": "orders:GetOrder", "resource": ORDER},                               # 0
    {"method": "DELETE", "path": "/orders/{id}", "action": "orders:DeleteOrder",
     "resource": ORDER},                                                            # 1
    {"path": "/orders/{id}", "action": "orders:{method}Order", "resource": ORDER},  # 2
    {"method": "GET", "path": "/orders", "action": "orders:ListOrders",
     "resource": "arn:aws:orders:::order/*"},                                       # 3
    {"path": "/files/{key+}", "action": "files:{method}",
     "resource": "arn:aws:files:::object/{key}"},                                   # 4
    {"method": "GET", "path": "/accounts/{acct}/orders/{id}", "action": "orders:GetOrder",
     "resource": "arn:aws:orders::{acct}:order/{id}"},                              # 5
    {"method": "GET", "path": "/", "action": "web:Home", "resource": "arn:aws:web:::home"},  # 6
    {"method": "GET", "path": "/{tenant}/profile", "action": "profiles:GetProfile",
     "resource": "arn:aws:profiles:::{tenant}"},                                    # 7
    {"method": "POST", "path": "/orders/special", "action": "orders:Special",
     "resource": "arn:aws:orders:::special"},                                       # 8: shadowed
]  # fmt: skip
DEFAULT = {"action": "http:{method}", "resource": "arn:aws:http:::{host}{path}"}
WITH_DEFAULT = table({"routes": ROUTES, "default": DEFAULT})
DENY_DEFAULT = table({"routes": ROUTES})

MATCHES = [
    # (method, host, path) -> (route, action, resource)
    ("GET", "orders.example", "/orders/42", "routes[0]", "orders:GetOrder", "arn:aws:orders:::order/42"),
    ("GET", "Orders.EXAMPLE:8443", "/orders/42", "routes[0]", "orders:GetOrder", "arn:aws:orders:::order/42"),
    ("GET", "orders.example", "/orders/%34%32", "routes[0]", "orders:GetOrder", "arn:aws:orders:::order/42"),
    ("GET", "other.example", "/orders/42", "routes[2]", "orders:GETOrder", "arn:aws:orders:::order/42"),
    ("DELETE", "orders.example", "/orders/42", "routes[1]", "orders:DeleteOrder", "arn:aws:orders:::order/42"),
    ("PATCH", "x", "/orders/42", "routes[2]", "orders:PATCHOrder", "arn:aws:orders:::order/42"),
    ("POST", "x", "/orders/special", "routes[2]", "orders:POSTOrder", "arn:aws:orders:::order/special"),
    ("GET", "x", "/orders", "routes[3]", "orders:ListOrders", "arn:aws:orders:::order/*"),
    ("GET", "x", "/orders/", "routes[3]", "orders:ListOrders", "arn:aws:orders:::order/*"),
    ("GET", "x", "//orders//42/./", "routes[2]", "orders:GETOrder", "arn:aws:orders:::order/42"),
    ("GET", "x", "/orders/7/../42", "routes[2]", "orders:GETOrder", "arn:aws:orders:::order/42"),
    ("GET", "x", "/files/a/b/c.txt", "routes[4]", "files:GET", "arn:aws:files:::object/a/b/c.txt"),
    ("PUT", "x", "/files/a%20b", "routes[4]", "files:PUT", "arn:aws:files:::object/a b"),
    ("GET", "x", "/files/a/../b", "routes[4]", "files:GET", "arn:aws:files:::object/b"),
    ("GET", "x", "/accounts/222233334444/orders/7", "routes[5]", "orders:GetOrder",
     "arn:aws:orders::222233334444:order/7"),
    ("GET", "x", "/", "routes[6]", "web:Home", "arn:aws:web:::home"),
    ("GET", "x", "/acme/profile", "routes[7]", "profiles:GetProfile", "arn:aws:profiles:::acme"),
    ("GET", "x", "/orders/profile", "routes[2]", "orders:GETOrder", "arn:aws:orders:::order/profile"),
    ("GET", "x", "/orders/42?expand=items", "routes[2]", "orders:GETOrder", "arn:aws:orders:::order/42"),
    # no route: the default, with {method} {host} (lower case, no port) {path} (normalized)
    ("GET", "Svc.Example:80", "/orders/42/items/", "default", "http:GET",
     "arn:aws:http:::svc.example/orders/42/items"),
    ("GET", "x", "/files", "default", "http:GET", "arn:aws:http:::x/files"),  # {key+}: 1 or more
    ("HEAD", "x", "/orders", "default", "http:HEAD", "arn:aws:http:::x/orders"),
    ("POST", "x", "/", "default", "http:POST", "arn:aws:http:::x/"),
    ("GET", "[::1]:8080", "/a%20b/c", "default", "http:GET", "arn:aws:http:::[::1]/a b/c"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "host", "path", "route", "action", "resource"), MATCHES)
def test_matching(
    method: str, host: str, path: str, route: str, action: str, resource: str
) -> None:
    """Method, host (case-insensitive, port ignored) and normalized path select the first
    matching route; its templates fill with the decoded captures."""
    target = WITH_DEFAULT.resolve(req(method, path, host))
    assert target == Target(action, resource, None, route)


@pytest.mark.parametrize(("method", "host", "path", "route", "action", "resource"), MATCHES)
def test_default_deny(
    method: str, host: str, path: str, route: str, action: str, resource: str
) -> None:
    """With the default `deny`, a request no route matches resolves to None."""
    target = DENY_DEFAULT.resolve(req(method, path, host))
    if route == "default":
        assert target is None
    else:
        assert target is not None
        assert target.route == route


@pytest.mark.parametrize(
    ("routes", "method", "path", "expected"),
    [
        # a method-less route before a GET route with the same path: the earlier wins
        ([("", "/a/{x}"), ("GET", "/a/b")], "GET", "/a/b", "routes[0]"),
        ([("GET", "/a/b"), ("", "/a/{x}")], "GET", "/a/b", "routes[0]"),
        ([("GET", "/a/b"), ("", "/a/{x}")], "PUT", "/a/b", "routes[1]"),
        # a placeholder first segment before a literal one: the earlier wins
        ([("", "/{x}/b"), ("", "/a/b")], "GET", "/a/b", "routes[0]"),
        ([("", "/a/b"), ("", "/{x}/b")], "GET", "/a/b", "routes[0]"),
        ([("", "/a/b"), ("", "/{x}/b")], "GET", "/c/b", "routes[1]"),
        ([("", "/{r+}"), ("", "/a/b")], "GET", "/a/b", "routes[0]"),
        ([("", "/a/{r+}"), ("", "/a/b")], "GET", "/a/b", "routes[0]"),
        ([("", "/a/{r+}"), ("", "/a")], "GET", "/a", "routes[1]"),
        ([("POST", "/a"), ("DELETE", "/a")], "GET", "/a", None),
    ],
)
def test_first_match_wins(
    routes: list[tuple[str, str]], method: str, path: str, expected: str | None
) -> None:
    """Routes are tried in the world file's order, whatever the index groups together."""
    specs = [
        {**({"method": m} if m else {}), "path": p, "action": "a:B", "resource": "*"}
        for m, p in routes
    ]
    target = table({"routes": specs}).resolve(req(method, path))
    assert (target.route if target else None) == expected


def test_greedy_capture_joins_the_decoded_rest() -> None:
    """{name+} is the rest of the normalized path: one segment or more, joined with '/'."""
    t = table(
        {"routes": [{"path": "/files/{key+}", "action": "f:Get", "resource": "arn:aws:f:::{key}"}]}
    )
    got = t.resolve(req("GET", "/files/a%2Bb/./c//d"))
    assert got is not None
    assert got.resource == "arn:aws:f:::a+b/c/d"
    with pytest.raises(BadRequest):
        t.resolve(req("GET", "/files/a%2Fb"))  # not even inside {key+}


def test_a_value_with_a_colon_cannot_move_the_arn_fields() -> None:
    """A capture filling the account field may not hold ':' (it would choose the account);
    in the resource part a ':' is just a character."""
    with pytest.raises(BadRequest) as info:
        WITH_DEFAULT.resolve(req("GET", "/accounts/1%3A2/orders/7"))
    assert "{acct}" in info.value.message
    got = WITH_DEFAULT.resolve(req("GET", "/orders/a%3Ab"))
    assert got is not None
    assert got.resource == "arn:aws:orders:::order/a:b"
    t = table({"routes": [{"path": "/do/{op}", "action": "svc:{op}", "resource": "*"}]})
    with pytest.raises(BadRequest):
        t.resolve(req("GET", "/do/Get%3AThing"))


def test_bad_paths_are_refused_before_matching() -> None:
    """A path normalization refuses is a 400, even where no route would match."""
    for path in ("/../x", "/files/a%2fb", "/x/%zz", "/x/%00", "/x/%FF", "nopath"):
        with pytest.raises(BadRequest) as info:
            DENY_DEFAULT.resolve(req("GET", path))
        assert (info.value.code, info.value.status) == ("InvalidRequest", 400)


def test_resource_longer_than_an_arn_is_denied() -> None:
    """A resource over 2,048 characters is refused as AccessDenied (403); 2,048 is fine."""
    prefix = len("arn:aws:files:::object/")
    ok = WITH_DEFAULT.resolve(req("GET", "/files/" + "a" * (2048 - prefix)))
    assert ok is not None
    assert len(ok.resource) == 2048
    with pytest.raises(ResourceTooLong) as info:
        WITH_DEFAULT.resolve(req("GET", "/files/" + "a" * (2049 - prefix)))
    assert (info.value.code, info.value.status) == ("AccessDenied", 403)
    assert "2049 characters" in info.value.message
    assert "2048" in info.value.message
    assert isinstance(info.value, RouteRefused)
    with pytest.raises(ResourceTooLong):  # the default's resource too
        WITH_DEFAULT.resolve(req("GET", "/x/" + "a" * 2100))


def test_the_limit_is_the_engines() -> None:
    assert MAX_RESOURCE_CHARS == ENGINE_MAX_RESOURCE_CHARS


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("Orders.Example", "orders.example"),
        ("orders.example:8080", "orders.example"),
        ("10.0.0.1:443", "10.0.0.1"),
        ("[2001:DB8::1]:8443", "[2001:db8::1]"),
        ("[2001:db8::1]", "[2001:db8::1]"),
        ("odd:port", "odd:port"),
    ],
)
def test_request_host(authority: str, host: str) -> None:
    assert request_host(authority) == host


def test_host_rule_with_ipv6_literal() -> None:
    t = table({"routes": [{"host": "[::1]", "path": "/", "action": "a:B", "resource": "*"}]})
    assert t.resolve(req("GET", "/", host="[::1]:80")) is not None
    assert t.resolve(req("GET", "/", host="localhost")) is None


def test_no_ext_authz_block_denies_everything() -> None:
    t = RouteTable.build(None)
    assert t.resolve(req("GET", "/")) is None
    assert (t.dry_run, t.strip_credentials, t.envoy_identities) == (False, False, frozenset())


def test_flags_come_from_the_world() -> None:
    t = table(
        {
            "dry_run": True,
            "strip_credentials": True,
            "envoy_identities": ["spiffe://td/envoy-a", "spiffe://td/envoy-b"],
        }
    )
    assert t.dry_run
    assert t.strip_credentials
    assert t.envoy_identities == frozenset({"spiffe://td/envoy-a", "spiffe://td/envoy-b"})


# -- context ------------------------------------------------------------------------------------

CONTEXT_ROUTE = {
    "path": "/orders/{id}",
    "action": "orders:GetOrder",
    "resource": ORDER,
    "context": [
        {"from": "query", "name": "expand", "key": "orders:Expand"},
        {"from": "header", "name": "X-Tenant", "key": "aws:RequestTag/tenant"},
        {"from": "query", "name": "tag", "key": "orders:Tags", "type": "STRING_LIST"},
        {"from": "query", "name": "n", "key": "orders:Count", "type": "NUMERIC"},
        {"from": "header", "name": "x-flags", "key": "orders:Flags", "type": "STRING_LIST"},
        {"from": "query", "name": "ok", "key": "orders:Ok", "type": "BOOLEAN"},
        {"from": "header", "name": "x-when", "key": "orders:When", "type": "DATE"},
    ],
}
CONTEXT_TABLE = table({"routes": [CONTEXT_ROUTE, {**ROUTES[4]}]})

CONTEXTS = [
    # (query, headers) -> {key: values} (lower-case keys), multivalued keys
    ("", {}, None, set()),
    ("other=1&x=%31", {"x-other": "1"}, None, set()),
    ("expand=items", {}, {"orders:expand": ("items",)}, set()),
    ("expand=a+b%21", {}, {"orders:expand": ("a b!",)}, set()),
    ("expand", {}, {"orders:expand": ("",)}, set()),
    ("ex%70and=1", {}, {"orders:expand": ("1",)}, set()),
    ("Expand=1", {}, None, set()),  # parameter names are case-sensitive
    ("tag=a&tag=b&&tag=", {}, {"orders:tags": ("a", "b", "")}, {"orders:tags"}),
    ("tag=a", {}, {"orders:tags": ("a",)}, {"orders:tags"}),
    ("n=5&ok=true", {}, {"orders:count": ("5",), "orders:ok": ("true",)}, set()),
    ("", {"x-tenant": "acme"}, {"aws:requesttag/tenant": ("acme",)}, set()),
    # A header is one field value: a comma (a joined repeat, or a User-Agent's) is kept whole.
    ("", {"x-tenant": "a, b"}, {"aws:requesttag/tenant": ("a, b",)}, set()),
    ("", {"x-flags": "a, b,,\tc"}, {"orders:flags": ("a", "b", "c")}, {"orders:flags"}),
    ("", {"x-when": "2024-05-01T00:00:00Z"}, {"orders:when": ("2024-05-01T00:00:00Z",)}, set()),
]


@pytest.mark.parametrize(("query", "headers", "values", "multi"), CONTEXTS)
def test_context_from_query_and_headers(
    query: str,
    headers: dict[str, str],
    values: dict[str, tuple[str, ...]] | None,
    multi: set[str],
) -> None:
    """Declared parameters and headers become condition keys of their type; absent ones stay
    absent (no context at all when none is given)."""
    target = CONTEXT_TABLE.resolve(req("GET", "/orders/1?" + query, headers=headers))
    assert target is not None
    if values is None:
        assert target.context is None
    else:
        assert target.context is not None
        assert target.context.values == values
        assert target.context.multi == multi


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("expand=1&expand=2", {}, "query parameter 'expand' several values"),
        ("n=five", {}, "not a valid NUMERIC"),
        ("ok=yes", {}, "not a valid BOOLEAN"),
        ("", {"x-when": "yesterday"}, "not a valid DATE"),
        ("expand=%zz", {}, "bad percent-escape"),
        ("unrelated=%FF", {}, "not UTF-8"),
    ],
)
def test_context_refusals(query: str, headers: dict[str, str], message: str) -> None:
    """Several values for a single-valued key, a value not of its type, or a query that does
    not decode: 400, never a guess."""
    with pytest.raises(BadRequest) as info:
        CONTEXT_TABLE.resolve(req("GET", "/orders/1?" + query, headers=headers))
    assert all(word in info.value.message for word in message.split(" several ")), info.value
    assert info.value.status == 400


def test_context_values_stay_within_authorizes_limit() -> None:
    """A value over Authorize's 2,048 characters, or over 256 values for a key, is refused
    here (400), not by the engine."""
    assert MAX_VALUE_CHARS == MAX_CONTEXT_VALUE_CHARS
    ok = CONTEXT_TABLE.resolve(req("GET", "/orders/1?expand=" + "a" * 2048))
    assert ok is not None
    with pytest.raises(BadRequest) as info:
        CONTEXT_TABLE.resolve(req("GET", "/orders/1", headers={"x-tenant": "a" * 2049}))
    assert "header 'x-tenant' a value of 2049 characters" in info.value.message
    many = "&".join(["tag=t"] * 257)
    with pytest.raises(BadRequest) as info:
        CONTEXT_TABLE.resolve(req("GET", "/orders/1?" + many))
    assert "query parameter 'tag' 257 values" in info.value.message
    got = CONTEXT_TABLE.resolve(req("GET", "/orders/1?" + "&".join(["tag=t"] * 256)))
    assert got is not None
    assert got.context is not None
    assert got.context.values == {"orders:tags": ("t",) * 256}


def test_a_route_without_context_does_not_read_the_query() -> None:
    """The query is the upstream's business unless the route declares context from it."""
    target = CONTEXT_TABLE.resolve(req("GET", "/files/a?x=%zz&x=%FF"))
    assert target is not None
    assert target.context is None


# -- properties ---------------------------------------------------------------------------------

PROPERTY_TABLE = table(
    {
        "routes": [
            {"path": "/x/{a}/z", "action": "t:A", "resource": "arn:aws:t:::{a}"},
            {"path": "/x/z/{b}", "action": "t:B", "resource": "arn:aws:t:::{b}"},
            {"path": "/{c}", "action": "t:C", "resource": "arn:aws:t:::{c}"},
            {"path": "/y/{r+}", "action": "t:R", "resource": "arn:aws:t:::{r}"},
        ],
        "default": {"action": "t:Default", "resource": "arn:aws:t:::{path}"},
    }
)
_PIECE = st.one_of(
    st.sampled_from(["x", "y", "z", "", ".", "..", "%2F", "%2e%2E", "a%20b", "%41", "%5c"]),
    st.text(alphabet="abxz/%2fF5c.", max_size=5),
)


@given(st.lists(_PIECE, min_size=1, max_size=6))
def test_single_segment_captures_never_hold_a_slash(pieces: list[str]) -> None:
    """Whatever the path, resolve() maps it or refuses it as RouteRefused; a {name} value
    never holds '/' (nor is empty, '.' or '..'), {name+} is normalized segments, and the
    default's {path} is a normalized absolute path."""
    try:
        target = PROPERTY_TABLE.resolve(req("GET", "/" + "/".join(pieces)))
    except RouteRefused:
        return
    assert target is not None
    value = target.resource.removeprefix("arn:aws:t:::")
    if target.action in ("t:A", "t:B", "t:C"):
        assert "/" not in value
        assert value not in ("", ".", "..")
    elif target.action == "t:R":
        assert all(s not in ("", ".", "..") for s in value.split("/"))
    else:
        assert target.action == "t:Default"
        assert value.startswith("/")
        assert value == "/" or all(s not in ("", ".", "..") for s in value[1:].split("/"))


@pytest.mark.parametrize(
    ("text", "values", "filled"),
    [
        ("arn:aws:x:::fixed", {}, "arn:aws:x:::fixed"),
        ("arn:aws:x:::{a}", {"a": "1"}, "arn:aws:x:::1"),
        ("arn:aws:x:::{a}/{b}", {"a": "1", "b": "{b}"}, "arn:aws:x:::1/{b}"),
        ("arn:aws:x:::{a}}{b}{", {"a": "1", "b": "2"}, "arn:aws:x:::1}2{"),
        ("arn:aws:x:::{a}{", {"a": "1"}, "arn:aws:x:::1{"),
    ],
)
def test_templates_fill_literally(text: str, values: dict[str, str], filled: str) -> None:
    """Values are inserted as text (never re-read as templates); stray braces stay literal."""
    assert compile_template(text, action=False).fill(values) == filled


# -- the memo of resolved requests ---------------------------------------------------------------

MEMO_TABLE_SPEC = {"routes": [CONTEXT_ROUTE, *ROUTES], "default": {"action": "http:{method}",
                   "resource": "arn:aws:http:::{host}{path}"}}  # fmt: skip


def _outcome(t: RouteTable, r: HttpRequest) -> object:
    try:
        return t.resolve(r)
    except RouteRefused as err:
        return (type(err).__name__, err.message)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GET", "get", "DELETE", "POST"]),
            st.sampled_from(["orders.example", "Orders.Example:8443", "svc.example"]),
            st.text(alphabet="/ordersfil.%2Fx1", max_size=20).map(lambda s: "/" + s),
            st.sampled_from(["", "?expand=items", "?expand=a&expand=b"]),
            st.sampled_from([{}, {"x-tenant": "acme"}, {"x-tenant": "other"}]),
        ),
        max_size=12,
    )
)
def test_the_memo_answers_as_a_fresh_table_would(requests: list[Any]) -> None:
    """Whatever came before, a remembered answer is the one resolving afresh gives (routes
    with context are never remembered: the same path with other headers answers otherwise)."""
    memo = table(MEMO_TABLE_SPEC)
    for method, host, path, query, headers in requests * 2:
        r = req(method, path + query, host=host, headers=headers)
        assert _outcome(memo, r) == _outcome(table(MEMO_TABLE_SPEC), r)


def test_a_context_route_is_never_remembered() -> None:
    t = table(MEMO_TABLE_SPEC)
    first = t.resolve(req("GET", "/orders/1", headers={"x-tenant": "acme"}))
    second = t.resolve(req("GET", "/orders/1", headers={"x-tenant": "other"}))
    assert first is not None
    assert second is not None
    assert first.context is not None
    assert second.context is not None
    assert first.context.values != second.context.values


def test_the_memo_is_bounded() -> None:
    """At most MEMO_ENTRIES answers, and none for a long request (its key would be large)."""
    t = table(MEMO_TABLE_SPEC)
    for i in range(MEMO_ENTRIES + 10):
        t.resolve(req("GET", f"/files/{i}"))
        assert len(t._memo) <= MEMO_ENTRIES
    t._memo.clear()
    long_path = "/files/" + "k" * MEMO_KEY_CHARS
    assert t.resolve(req("GET", long_path)) is not None
    assert len(t._memo) == 0
