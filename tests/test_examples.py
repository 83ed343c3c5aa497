"""examples/shop against an in-process sidecar on 127.0.0.1: the documented walk-through works
(one report allowed, the secret one denied by the sidecar through the interceptor)."""

from __future__ import annotations

import asyncio

from examples.shop import client, server
from sidecar.client import Client
from sidecar.server.app import Sidecar
from tests.server.conftest import clock, sidecar

__all__ = ["clock", "sidecar"]


def run_shop(sidecar_addr: str) -> dict[str, tuple[str, str]]:
    with Client(sidecar_addr, timeout=5.0) as authorizer:
        shop, port = server.serve(authorizer)
        try:
            return client.run(sidecar_addr, f"127.0.0.1:{port}")
        finally:
            shop.stop(None)


async def test_shop_example_allows_a_report_and_denies_the_secret_one(sidecar: Sidecar) -> None:
    # The sidecar serves on this test's event loop: the blocking example runs in a thread.
    results = await asyncio.wait_for(
        asyncio.to_thread(run_shop, f"127.0.0.1:{sidecar.grpc_port}"), timeout=60
    )
    assert results["q3.csv"] == ("OK", "contents of q3.csv")
    assert results["secret/plans.csv"] == (
        "PERMISSION_DENIED",
        "User: arn:aws:sts::111111111111:assumed-role/app-reader/shop-client is not authorized "
        "to perform: s3:GetObject on resource: arn:aws:s3:::reports/secret/plans.csv with an "
        "explicit deny in an identity-based policy",
    )
