"""Which gRPC server stack to build on: grpc.aio or the threaded server (issue 5).

Both serve a no-op unary method; h2load (Debian's nghttp2-client) drives each with the same
load in the same run, speaking gRPC (5-byte frame header + message, content-type
application/grpc, te: trailers). Run:

    .venv/bin/python benchmarks/grpc_stack.py [--requests 40000] [--clients 8] [--streams 16]

It skips with a clear message when h2load is absent (`apt-get install nghttp2-client`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc

METHOD = "/bench.Noop/Call"


def _handler(request: bytes, context: object) -> bytes:
    return b""


async def _ahandler(request: bytes, context: object) -> bytes:
    return b""


def _generic(fn: object) -> grpc.GenericRpcHandler:  # type: ignore[type-arg]
    return grpc.method_handlers_generic_handler(
        "bench.Noop",
        {"Call": grpc.unary_unary_rpc_method_handler(fn)},  # type: ignore[arg-type]
    )


def serve_sync(port: int, workers: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers([_generic(_handler)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def serve_aio(port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_generic(_ahandler)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def h2load(port: int, body: Path, requests: int, clients: int, streams: int) -> tuple[float, str]:
    cmd = [
        "h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), "-t", "1",
        "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
        f"http://127.0.0.1:{port}{METHOD}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    status = re.search(r"status codes: (.*)", out)
    return rps, status.group(1) if status else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--serve", choices=["aio", "sync"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "aio":
        asyncio.run(serve_aio(args.port))
        return 0
    if args.serve == "sync":
        serve_sync(args.port, workers=16)
        return 0
    if shutil.which("h2load") is None:
        print("SKIP: h2load not found (apt-get install nghttp2-client)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "empty.grpc"
        body.write_bytes(b"\x00\x00\x00\x00\x00")  # uncompressed frame of an empty message
        results = {}
        for stack in ("aio", "sync"):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", stack, "--port", str(port)]
            )
            try:
                wait_port(port)
                h2load(port, body, 2000, args.clients, args.streams)  # warm up
                results[stack] = h2load(port, body, args.requests, args.clients, args.streams)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    load = f"h2load -n {args.requests} -c {args.clients} -m {args.streams} -t 1"
    print(f"| stack | req/s | status codes |  ({load})")
    print("|---|---:|---|")
    for stack, (rps, status) in results.items():
        print(f"| {stack} | {rps:,.0f} | {status} |")
    print(f"aio / sync = {results['aio'][0] / results['sync'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
