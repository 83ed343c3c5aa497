"""The `iam-sidecar` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from google.protobuf import json_format

from sidecar.errors import SidecarError, ValidationError


def _print_error(err: SidecarError) -> int:
    print(json.dumps(err.as_dict()), file=sys.stderr)
    return 1


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sidecar.api.v1 import authorizer_pb2
    from sidecar.server.convert import simulate_custom_policy

    text = args.input.read() if args.input else sys.stdin.read()
    request = authorizer_pb2.SimulateCustomPolicyRequest()
    try:
        json_format.Parse(text, request)
    except json_format.ParseError as exc:
        return _print_error(ValidationError(f"The request is not a valid JSON request: {exc}"))
    try:
        response = simulate_custom_policy(request)
    except SidecarError as err:
        return _print_error(err)
    print(
        json_format.MessageToJson(
            response,
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=args.proto_names,
            indent=2,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iam-sidecar",
        description="AWS IAM roles, STS and policy evaluation as a gRPC sidecar.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sim = sub.add_parser(
        "simulate",
        help="evaluate policies as IAM's SimulateCustomPolicy does",
        description=(
            "Read a SimulateCustomPolicyRequest as protobuf JSON (on stdin, or from --input) and "
            "print the SimulateCustomPolicyResponse as JSON: one result per (action, resource) "
            "pair with the decision, the statements that decided it and the reason. This is the "
            "code path of the Authorizer.SimulateCustomPolicy RPC. On invalid input (for example "
            'a MalformedPolicyDocument) it prints {"code", "message", "location"} as JSON on '
            "stderr and exits 1."
        ),
        epilog=(
            'example: echo \'{"policyInputList": ["{\\"Version\\": \\"2012-10-17\\", '
            '\\"Statement\\": {\\"Effect\\": \\"Allow\\", \\"Action\\": \\"s3:*\\", '
            '\\"Resource\\": \\"*\\"}}"], "actionNames": ["s3:GetObject"]}\' '
            "| iam-sidecar simulate"
        ),
    )
    sim.add_argument("--input", type=argparse.FileType("r"), help="read the request from this file")
    sim.add_argument(
        "--proto-names",
        action="store_true",
        help="print snake_case proto field names instead of lowerCamelCase JSON names",
    )
    sim.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
