"""The shop's client: assumes a role through the sidecar and calls the shop with its session.

Run: ``python -m examples.shop.client [--sidecar 127.0.0.1:50051] [--shop 127.0.0.1:50061]``
(the demo user's keys are the defaults of ``--access-key-id`` / ``--secret-access-key``).
"""

from __future__ import annotations

import argparse

import grpc

from examples.shop.service import GET_REPORT, Message
from sidecar.client import Client
from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET

APP_READER = "arn:aws:iam::111111111111:role/apps/app-reader"


def get_report(shop: str, key: str, session_token: str) -> tuple[str, str]:
    """Call GetReport; returns (status name, the report or the refusal's message)."""
    with grpc.insecure_channel(shop) as channel:
        rpc = channel.unary_unary(
            GET_REPORT,
            request_serializer=Message.SerializeToString,
            response_deserializer=Message.FromString,
        )
        try:
            reply = rpc(
                Message(key=key),
                metadata=(("authorization", f"Bearer {session_token}"),),
                timeout=5.0,
            )
            return grpc.StatusCode.OK.name, reply.value
        except grpc.RpcError as err:
            return err.code().name, err.details() or ""


def run(
    sidecar: str,
    shop: str,
    access_key_id: str = DEMO_ACCESS_KEY_ID,
    secret_access_key: str = DEMO_SECRET,
    keys: tuple[str, ...] = ("q3.csv", "secret/plans.csv"),
) -> dict[str, tuple[str, str]]:
    """Assume app-reader as the IAM user, then fetch each report with the role's session."""
    with Client(sidecar, access_key_id=access_key_id, secret_access_key=secret_access_key) as iam:
        # Refreshing credentials: a long-running client calls .get() before each call.
        creds = iam.role_credentials(APP_READER, "shop-client")
        return {key: get_report(shop, key, creds.get().session_token) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sidecar", default="127.0.0.1:50051")
    parser.add_argument("--shop", default="127.0.0.1:50061")
    parser.add_argument("--access-key-id", default=DEMO_ACCESS_KEY_ID)
    parser.add_argument("--secret-access-key", default=DEMO_SECRET)
    args = parser.parse_args()
    results = run(args.sidecar, args.shop, args.access_key_id, args.secret_access_key)
    for key, (status, text) in results.items():
        print(f"{key}: {status}: {text}")


if __name__ == "__main__":
    main()
