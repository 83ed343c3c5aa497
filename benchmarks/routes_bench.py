"""RouteTable.resolve on a 50-route ext_authz table: µs per call, the mesh's per-request mapping.

    .venv/bin/python benchmarks/routes_bench.py [--number 20000] [--repeat 7]

The table is ten services of five routes each (list, get, put, delete by id; a {key+} file
route), with a host rule on every other service, and a default action. Each case is timed alone:
the best of ``--repeat`` loops of ``--number`` calls, CPU time (``time.process_time``), so that
other work on a shared machine does not count. Building the table is timed once, in ms.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from sidecar.mesh.request import HttpRequest
from sidecar.mesh.routes import RouteTable


def ext_authz() -> dict[str, object]:
    routes: list[dict[str, object]] = []
    for i in range(10):
        svc = f"svc{i}"
        arn = f"arn:aws:{svc}:::item/{{id}}"
        host = {"host": f"{svc}.example"} if i % 2 else {}
        routes += [
            {"method": "GET", "path": f"/{svc}/items", "action": f"{svc}:ListItems",
             "resource": f"arn:aws:{svc}:::item/*", **host, "context": []},
            {"method": "GET", "path": f"/{svc}/items/{{id}}", "action": f"{svc}:GetItem",
             "resource": arn, **host, "context": []},
            {"method": "PUT", "path": f"/{svc}/items/{{id}}", "action": f"{svc}:PutItem",
             "resource": arn, **host, "context": []},
            {"method": "DELETE", "path": f"/{svc}/items/{{id}}", "action": f"{svc}:DeleteItem",
             "resource": arn, **host, "context": []},
            {"path": f"/{svc}/files/{{key+}}", "action": f"{svc}:{{method}}File",
             "resource": f"arn:aws:{svc}:::file/{{key}}", **host, "context": [
                 {"from": "query", "name": "v", "key": f"{svc}:Version", "type": "NUMERIC"},
                 {"from": "header", "name": "x-tenant", "key": "aws:RequestTag/tenant",
                  "type": "STRING"},
             ]},
        ]  # fmt: skip
    return {
        "routes": routes,
        "default": {"action": "http:{method}", "resource": "arn:aws:http:::{host}{path}"},
        "dry_run": False,
        "strip_credentials": False,
        "envoy_identities": [],
    }


HEADERS = {"x-request-id": "0f5c", "user-agent": "curl/8.5.0", "accept": "*/*"}
CASES = {
    "GET by id, routes[1] (fast path)": HttpRequest(
        "GET", "svc0.example", "/svc0/items/42", HEADERS
    ),
    "GET by id, routes[46] (host rule)": HttpRequest(
        "GET", "svc9.example:8443", "/svc9/items/42", HEADERS
    ),
    "GET with a query, routes[21]": HttpRequest("GET", "x", "/svc4/items/42?expand=all", HEADERS),
    "dots and escapes, routes[11]": HttpRequest("GET", "x", "/svc2/items/./a%20b.json", HEADERS),
    "{key+} with context, routes[4]": HttpRequest(
        "PUT", "x", "/svc0/files/a/b/c.txt?v=3", {**HEADERS, "x-tenant": "acme"}
    ),
    "no route: the default": HttpRequest("GET", "x", "/other/thing/42", HEADERS),
}


def per_call_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, time.process_time() - start)
    return best / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    block = ext_authz()
    start = time.process_time()
    table = RouteTable.build(block)
    built_ms = (time.process_time() - start) * 1e3
    print(f"RouteTable.build, {len(table.routes)} routes: {built_ms:.2f} ms")
    print(f"{'':34} {'matched':>8} {'remembered':>11}")
    for name, request in CASES.items():
        target = table.resolve(request)
        assert target is not None, name
        # _resolve: the route matched afresh; resolve: the same request again (its answer is
        # remembered when the route reads no query or header).
        fresh = per_call_us(lambda r=request: table._resolve(r), args.number, args.repeat)
        memo = per_call_us(lambda r=request: table.resolve(r), args.number, args.repeat)
        print(f"{name:34} {fresh:6.2f} µs {memo:8.2f} µs  -> {target.route}: {target.action}")


if __name__ == "__main__":
    main()
