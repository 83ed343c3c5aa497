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


def _cmd_validate(args: argparse.Namespace) -> int:
    from sidecar.errors import WorldError
    from sidecar.server.world_file import load_world_file

    try:
        world = load_world_file(args.file)
    except WorldError as err:
        for path, message in err.issues:
            print(f"{err.source}: {path}: {message}" if path else f"{err.source}: {message}")
        print(f"{len(err.issues)} problem(s) found", file=sys.stderr)
        return 1
    roles = sum(len(a.roles) for a in world.accounts.values())
    users = sum(len(a.users) for a in world.accounts.values())
    policies = sum(len(a.managed_policies) for a in world.accounts.values())
    print(
        f"{args.file}: ok: {len(world.accounts)} account(s), {roles} role(s), {users} user(s), "
        f"{policies} managed policy(ies)"
    )
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from sidecar.server.keyfile import SystemEntropy, read_key_ring, write_key_ring
    from sidecar.sts.keys import KeyRing, KeySetError

    try:
        if args.keys_command == "generate":
            ring = KeyRing.generate(SystemEntropy(), args.kid)
        elif args.keys_command == "rotate":
            ring = read_key_ring(args.file).rotated(SystemEntropy(), args.kid)
        else:  # public
            ring = read_key_ring(args.file).verify_only()
    except KeySetError as err:
        return _print_error(err)
    out = getattr(args, "out", None) or (args.file if args.keys_command == "rotate" else None)
    if out:
        write_key_ring(ring, out)
        print(f"wrote key set to {out} (active key: {ring.active_kid or 'none, verify-only'})")
    else:
        print(json.dumps(ring.to_dict(), indent=2))
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    import datetime as dt

    from sidecar.server.revoke_file import revoke_sessions, unified_diff, write_atomically

    before = args.before or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        old, new = revoke_sessions(args.config, args.role_arn, before)
    except SidecarError as err:
        return _print_error(err)
    except OSError as exc:
        return _print_error(ValidationError(f"{args.config}: {exc.strerror}"))
    if args.dry_run:
        print(unified_diff(old, new, args.config), end="")
        return 0
    write_atomically(args.config, new)
    print(
        f"{args.role_arn}: sessions issued before {before} are now denied "
        f"(AWSRevokeOlderSessions in {args.config}); running sidecars apply it on reload"
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

    val = sub.add_parser(
        "validate",
        help="check a world file and list every problem",
        description=(
            "Load and validate a world file (YAML or JSON) exactly as the sidecar would. Every "
            "problem is printed as FILE: PATH: MESSAGE; the exit code is 1 if there is any."
        ),
    )
    val.add_argument("file", help="the world file")
    val.set_defaults(func=_cmd_validate)

    keys = sub.add_parser(
        "keys",
        help="generate, rotate or publish session-token key sets",
        description=(
            "Session tokens are signed with Ed25519 keys held in a key-set file (JSON). "
            "'generate' makes a new set, 'rotate' adds a new active key to a set and keeps the "
            "old ones for verification (live sessions stay valid), and 'public' writes the "
            "verify-only set (no private keys) for replicas that must not mint tokens."
        ),
    )
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = keys_sub.add_parser("generate", help="a new key set (printed, or written with --out)")
    gen.add_argument("--kid", default="k1", help="id of the new key (default k1)")
    gen.add_argument("--out", help="write to this file (mode 0600) instead of printing")
    rot = keys_sub.add_parser("rotate", help="add a new active key to FILE (in place)")
    rot.add_argument("file")
    rot.add_argument("--kid", required=True, help="id of the new key")
    pub = keys_sub.add_parser("public", help="the verify-only form of FILE")
    pub.add_argument("file")
    pub.add_argument("--out", help="write to this file instead of printing")
    keys.set_defaults(func=_cmd_keys)

    rev = sub.add_parser(
        "revoke-sessions",
        help="deny every session of a role issued before now",
        description=(
            "Add AWS's AWSRevokeOlderSessions policy (Deny * on * when aws:TokenIssueTime is "
            "before now) to the role in the world file, editing it in place with its comments "
            "and order kept. Running sidecars pick it up on reload. Revoking again moves the "
            "time forward."
        ),
    )
    rev.add_argument("role_arn", metavar="ROLE_ARN")
    rev.add_argument("--config", required=True, help="the world file to edit")
    rev.add_argument("--dry-run", action="store_true", help="print the change, do not write")
    rev.add_argument(
        "--before", help="revoke sessions issued before this ISO-8601 time (default: now)"
    )
    rev.set_defaults(func=_cmd_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
