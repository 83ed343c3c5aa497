"""The shop's server: every call is authorized by the sidecar before its handler runs.

Run: ``python -m examples.shop.server [--sidecar 127.0.0.1:50051] [--listen 127.0.0.1:50061]``
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from examples.shop.service import RULES, SERVICE, Message
from sidecar.client import Client
from sidecar.client.interceptor import AuthorizationInterceptor


def get_report(request: Any, _context: grpc.ServicerContext) -> Any:
    # Reached only when the caller's session may s3:GetObject on reports/<key>.
    return Message(key=request.key, value=f"contents of {request.key}")


def serve(sidecar: Client, listen: str = "127.0.0.1:0") -> tuple[grpc.Server, int]:
    """Start the shop on ``listen``; returns the server and its port (stop it when done)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4),
        interceptors=[AuthorizationInterceptor(sidecar, RULES)],
    )
    handler = grpc.unary_unary_rpc_method_handler(
        get_report,
        request_deserializer=Message.FromString,
        response_serializer=Message.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"GetReport": handler}),)
    )
    port = server.add_insecure_port(listen)
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sidecar", default="127.0.0.1:50051")
    parser.add_argument("--listen", default="127.0.0.1:50061")
    args = parser.parse_args()
    # The server itself needs no credentials: Authorize carries each caller's session token.
    with Client(args.sidecar, timeout=2.0) as sidecar:
        server, port = serve(sidecar, args.listen)
        print(f"shop listening on 127.0.0.1:{port}", flush=True)
        server.wait_for_termination()


if __name__ == "__main__":
    main()
