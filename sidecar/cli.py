"""The `iam-sidecar` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import IO, Any

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


def _print_problems(problems: list[tuple[str, str, str]], out: IO[str] | None = None) -> None:
    """Each (file, path, message) as FILE: PATH: MESSAGE (on ``out``, stdout by default), then
    the count on stderr."""
    for source, path, message in problems:
        print(f"{source}: {path}: {message}" if path else f"{source}: {message}", file=out)
    print(f"{len(problems)} problem(s) found", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    from sidecar.errors import WorldError
    from sidecar.server.world_file import load_world_file

    try:
        world = load_world_file(args.file, max_bytes=args.max_world_bytes)
    except WorldError as err:
        _print_problems([(err.source, path, message) for path, message in err.issues])
        return 1
    roles = sum(len(a.roles) for a in world.accounts.values())
    users = sum(len(a.users) for a in world.accounts.values())
    policies = sum(len(a.managed_policies) for a in world.accounts.values())
    print(
        f"{args.file}: ok: {len(world.accounts)} account(s), {roles} role(s), {users} user(s), "
        f"{policies} managed policy(ies)"
    )
    return 0


def _cmd_access(args: argparse.Namespace) -> int:
    """Exit 0 with the report; 2 for a bad world or an unknown role, with every problem."""
    from sidecar.errors import WorldError
    from sidecar.inspect_role import inspect_role, to_json, to_text
    from sidecar.server.app import ServeOptions, load_world

    try:  # no --config: the embedded demo world, as `serve` loads it
        world = load_world(ServeOptions(config=args.config, max_world_bytes=args.max_world_bytes))
        report = inspect_role(world, args.role_arn)
    except WorldError as err:
        issues = [(err.source, path, message) for path, message in err.issues]
        _print_problems(issues, sys.stderr)
        return 2
    except SidecarError as err:
        print(json.dumps(err.as_dict()), file=sys.stderr)
        return 2
    print(
        json.dumps(to_json(report), indent=2) if args.json else to_text(report),
        end="\n" if args.json else "",
    )
    return 0


# `test` never reads the world's secrets (no decision depends on them): each access key secret
# and MFA seed is this placeholder, valid base32 so that it serves as a seed too.
_NO_SECRET = "JBSWY3DPEHPK3PXP"


def _cmd_test(args: argparse.Namespace, now: float | None = None) -> int:
    """``now`` (epoch seconds) stands in for the system clock in tests."""
    import time
    from pathlib import Path

    from sidecar.errors import WorldError
    from sidecar.identity.load import build_world
    from sidecar.policytest.model import TestFileError
    from sidecar.policytest.parse import parse_test_file
    from sidecar.policytest.report import junit, line, summary
    from sidecar.policytest.run import run_cases
    from sidecar.server.world_file import parse_world_text, read_world_text

    def read(path: str) -> Any:
        return parse_world_text(path, read_world_text(path, args.max_world_bytes))

    class Clock:
        def now(self) -> float:
            return time.time() if now is None else now

    problems: list[tuple[str, str, str]] = []
    files: list[str] = []
    for given in args.tests:
        found = sorted(Path(given).rglob("*.iamtest.yaml")) if Path(given).is_dir() else None
        if found == []:
            problems.append((given, "", "no *.iamtest.yaml file in this directory"))
        files += [str(p) for p in found] if found is not None else [given]
    world, cases = None, []
    try:
        world = build_world(read(args.config), source=args.config, secrets=lambda k, r: _NO_SECRET)
    except WorldError as err:
        problems += [(err.source, path, message) for path, message in err.issues]
    for path in files:
        try:
            cases += parse_test_file(read(path), path)
        except WorldError as err:
            problems += [(err.source, p, message) for p, message in err.issues]
        except TestFileError as err:
            problems += err.issues
    results = []
    if world is not None and not problems:
        try:
            results = run_cases(world, cases, Clock())
        except TestFileError as err:
            problems += err.issues
    if problems:
        _print_problems(problems)
        return 2
    for result in results:
        if args.verbose or not result.passed:
            print(line(result))
    print(summary(results))
    if args.junit:
        Path(args.junit).write_bytes(junit(results))
    return 0 if all(r.passed for r in results) else 1


def _cmd_keys(args: argparse.Namespace) -> int:
    from sidecar.errors import KeySetError
    from sidecar.server.keyfile import SystemEntropy, read_key_ring, write_key_ring
    from sidecar.sts.keys import KeyRing

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


def _cmd_revoke(args: argparse.Namespace, now: float | None = None) -> int:
    """``now`` (epoch seconds) stands in for the system clock in tests."""
    import time

    from sidecar.server.revoke_file import revoke_sessions, unified_diff, write_atomically
    from sidecar.sts.revoke import revocation_time

    # The clock is read here, in the shell; the bound is the next whole second (docs/STS.md).
    before = args.before or revocation_time(time.time() if now is None else now)
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


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from sidecar.server import grpc_listener

    listener = grpc_listener.choose(os.environ)  # before anything imports grpc
    from sidecar.server.app import ServeOptions, serve
    from sidecar.server.logs import configure

    configure(args.log_level)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("--tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if bool(args.http_tls_cert) != bool(args.http_tls_key):
        print("--http-tls-cert and --http-tls-key go together", file=sys.stderr)
        return 2
    return serve(
        ServeOptions(
            config=args.config,
            listen=args.listen,
            http_listen=args.http_listen,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            client_ca=args.client_ca,
            workers=args.workers,
            keys_file=args.keys,
            decision_log_rate=args.decision_log_rate,
            reload_interval=args.reload_interval,
            grace=args.grace,
            drain_delay=args.drain_delay,
            max_world_bytes=args.max_world_bytes,
            http_header_timeout=args.http_header_timeout,
            http_idle_timeout=args.http_idle_timeout,
            http_max_connections=args.http_max_connections,
            http_tls_cert=args.http_tls_cert,
            http_tls_key=args.http_tls_key,
            health_listen=args.health_listen,
            metrics_dir=args.metrics_dir,
            event_loop=args.event_loop,
            grpc_listener=listener,
        )
    )


def _client(args: argparse.Namespace, *, sign: bool = True) -> Any:
    import os

    from sidecar.client.client import SidecarClient

    return SidecarClient(
        args.target,
        access_key_id=(args.access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")) if sign else None,
        secret_access_key=(args.secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY"))
        if sign
        else None,
        session_token=args.session_token or os.environ.get("AWS_SESSION_TOKEN"),
        region=args.region,
    )


def _rpc_error(err: Any) -> int:
    from sidecar.server.status import error_info

    info = error_info(err)
    print(
        json.dumps(
            {
                "code": info.reason if info else err.code().name,
                "message": err.details(),
                "grpc_status": err.code().name,
            }
        ),
        file=sys.stderr,
    )
    return 1


def _cmd_assume_role(args: argparse.Namespace) -> int:
    import grpc

    tags = dict(t.split("=", 1) for t in args.tag)
    policy = open(args.policy).read() if args.policy else ""  # noqa: SIM115
    try:
        with _client(args) as client:
            resp = client.assume_role(
                args.role_arn,
                args.role_session_name,
                duration_seconds=args.duration_seconds,
                external_id=args.external_id,
                policy=policy,
                tags=tags,
                transitive_tag_keys=args.transitive_tag_key,
                source_identity=args.source_identity,
                serial_number=args.serial_number,
                token_code=args.token_code,
            )
    except grpc.RpcError as err:
        return _rpc_error(err)
    c = resp.credentials
    if args.export:
        print(f"export AWS_ACCESS_KEY_ID={c.access_key_id}")
        print(f"export AWS_SECRET_ACCESS_KEY={c.secret_access_key}")
        print(f"export AWS_SESSION_TOKEN={c.session_token}")
        return 0
    print(
        json.dumps(
            {
                "Credentials": {
                    "AccessKeyId": c.access_key_id,
                    "SecretAccessKey": c.secret_access_key,
                    "SessionToken": c.session_token,
                    "Expiration": c.expiration.ToJsonString(),
                },
                "AssumedRoleUser": {
                    "AssumedRoleId": resp.assumed_role_user.assumed_role_id,
                    "Arn": resp.assumed_role_user.arn,
                },
                "PackedPolicySize": resp.packed_policy_size,
                "SourceIdentity": resp.source_identity,
            },
            indent=2,
        )
    )
    return 0


def _cmd_get_caller_identity(args: argparse.Namespace) -> int:
    import grpc

    try:
        with _client(args) as client:
            resp = client.get_caller_identity()
    except grpc.RpcError as err:
        return _rpc_error(err)
    print(json.dumps({"UserId": resp.user_id, "Account": resp.account, "Arn": resp.arn}, indent=2))
    return 0


def _cmd_authorize(args: argparse.Namespace) -> int:
    import grpc

    from sidecar.api.v1 import types_pb2

    context: dict[str, Any] = {}
    for item in args.context:
        key, sep, rest = item.partition("=")
        if not sep or not key:
            print(f"--context takes KEY=VALUE[:TYPE], not {item!r}", file=sys.stderr)
            return 2
        type_name = "STRING"
        head, colon, tail = rest.rpartition(":")
        if colon and tail.upper() in types_pb2.ContextKeyType.keys():  # noqa: SIM118
            rest, type_name = head, tail.upper()
        context[key] = (rest.split(",") if type_name.endswith("_LIST") else [rest], type_name)
    try:
        with _client(args, sign=False) as client:
            resp = client.authorize(args.action, args.resource, context=context)
    except grpc.RpcError as err:
        _rpc_error(err)
        return 2
    decision = types_pb2.Decision.Name(resp.decision)
    print(
        json.dumps(
            {
                "decision": decision,
                "principal": resp.principal_arn,
                "matched_statements": [
                    {"policy_id": m.policy_id, "sid": m.sid, "index": m.index, "effect": m.effect}
                    for m in resp.matched_statements
                ],
                "reason": resp.reason,
            },
            indent=2,
        )
    )
    return 0 if decision == "ALLOWED" else 1


def _add_client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target", default="127.0.0.1:50051", help="the sidecar's gRPC address (host:port)"
    )
    p.add_argument("--access-key-id", help="default: $AWS_ACCESS_KEY_ID")
    p.add_argument("--secret-access-key", help="default: $AWS_SECRET_ACCESS_KEY")
    p.add_argument("--session-token", help="default: $AWS_SESSION_TOKEN")
    p.add_argument("--region", default="us-east-1", help="SigV4 signing region (default us-east-1)")


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
        return value

    return parse


MIB = 1024 * 1024


def _add_max_world_bytes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-world-bytes",
        type=_positive(int),
        default=MIB,
        metavar="N",
        help=(
            f"refuse a world file larger than N bytes (default {MIB}, 1 MiB: a Kubernetes "
            "ConfigMap's limit). YAML aliases may add at most 100,000 nodes and nesting is "
            "limited to 100 levels, whatever N is"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iam-sidecar",
        description="AWS IAM roles, STS and policy evaluation as a gRPC sidecar.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    srv = sub.add_parser(
        "serve",
        help="run the sidecar (gRPC + HTTP)",
        description=(
            "Serve iamsidecar.v1.SecurityTokenService, iamsidecar.v1.Authorizer, Envoy's "
            "envoy.service.auth.v3.Authorization/Check (the world's ext_authz routes; "
            "docs/MESH.md), gRPC health and reflection on --listen, and /metrics, /healthz, "
            "/readyz, pod identity (/v1/credentials) and the STS Query API (POST /) on "
            "--http-listen. With no "
            "--config the embedded demo world is served (the log says so). The world file and "
            "the key set are reloaded when they change (ConfigMap symlink swaps included) or on "
            "SIGHUP; a broken file keeps the last good world. SIGTERM drains: health goes "
            "NOT_SERVING, in-flight calls finish within --grace seconds, then the process exits. "
            "gRPC runs on its iomgr TCP listener, one thread hand-off fewer per call than its "
            "EventEngine listener; GRPC_EXPERIMENTS=event_engine_listener chooses that one "
            "(docs/SERVER.md)."
        ),
    )
    srv.add_argument("--config", help="the world file (YAML or JSON); default: the demo world")
    srv.add_argument(
        "--listen", default="127.0.0.1:50051", help="gRPC address: host:port or unix:///path"
    )
    srv.add_argument(
        "--http-listen", default="127.0.0.1:9901", help="HTTP address for metrics and health"
    )
    srv.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
    srv.add_argument("--tls-key", help="the certificate's private key (PEM)")
    srv.add_argument("--client-ca", help="require client certificates signed by this CA (mTLS)")
    srv.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)"
    )
    srv.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the event loop to serve on: uvloop (more calls per second, and less time per "
        "call; installed with the sidecar on Linux and macOS), asyncio, or auto: uvloop when "
        "installed (default)",
    )
    srv.add_argument(
        "--metrics-dir",
        metavar="DIR",
        help="with --workers N > 1: the directory where the workers write their metrics, so "
        "that /metrics shows all of them whichever answers; emptied at start, writable, one "
        "per sidecar (default: $PROMETHEUS_MULTIPROC_DIR, else a temporary directory removed "
        "at exit; unused with one worker)",
    )
    srv.add_argument(
        "--keys", help="session-token key set (default: the world's signing.keys_file)"
    )
    srv.add_argument(
        "--decision-log-rate",
        type=float,
        default=0.0,
        help="share of decisions to log with their deciding statements (0..1, default 0)",
    )
    srv.add_argument(
        "--reload-interval", type=float, default=1.0, help="seconds between file change checks"
    )
    srv.add_argument("--grace", type=float, default=10.0, help="drain grace period in seconds")
    srv.add_argument(
        "--drain-delay",
        type=float,
        default=1.0,
        help="seconds to keep answering after health turns NOT_SERVING (within --grace)",
    )
    _add_max_world_bytes(srv)
    srv.add_argument(
        "--http-header-timeout",
        type=_positive(float),
        default=10.0,
        metavar="S",
        help="HTTP port: close a connection whose request line and headers have not all "
        "arrived S seconds after it opened or, kept alive, after the request's first byte "
        "(default 10)",
    )
    srv.add_argument(
        "--http-idle-timeout",
        type=_positive(float),
        default=75.0,
        metavar="S",
        help="HTTP port: close a kept-alive connection idle for S seconds (default 75)",
    )
    srv.add_argument(
        "--http-max-connections",
        type=_positive(int),
        default=1024,
        metavar="N",
        help="HTTP port: at most N connections open at once; one more is closed as soon as "
        "it is accepted (default 1024)",
    )
    srv.add_argument(
        "--http-tls-cert", help="serve the HTTP port over https with this certificate (PEM)"
    )
    srv.add_argument("--http-tls-key", help="the HTTP port certificate's private key (PEM)")
    srv.add_argument(
        "--health-listen",
        metavar="ADDRESS",
        help="also serve health alone on ADDRESS (host:port or unix:///path), in plaintext: "
        "gRPC health and HTTP/1.1 GET /healthz and /readyz on the same address, for kubelet "
        "probes, which cannot present client certificates (default: off)",
    )
    srv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    srv.set_defaults(func=_cmd_serve)

    ar = sub.add_parser(
        "assume-role",
        help="get temporary credentials from a running sidecar",
        description=(
            "Call SecurityTokenService.AssumeRole on a running sidecar, signed with SigV4 using "
            "--access-key-id/--secret-access-key (or $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, "
            "with $AWS_SESSION_TOKEN for role chaining). Prints the credentials as JSON, or as "
            "shell exports with --export. Exit 1 with the AWS error code on failure."
        ),
    )
    ar.add_argument("role_arn", metavar="ROLE_ARN")
    ar.add_argument("--role-session-name", required=True)
    ar.add_argument("--duration-seconds", type=int, default=0)
    ar.add_argument("--external-id", default="")
    ar.add_argument("--policy", help="file with an inline session policy (JSON)")
    ar.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    ar.add_argument("--transitive-tag-key", action="append", default=[])
    ar.add_argument("--source-identity", default="")
    ar.add_argument("--serial-number", default="")
    ar.add_argument("--token-code", default="")
    ar.add_argument("--export", action="store_true", help="print shell export lines")
    _add_client_flags(ar)
    ar.set_defaults(func=_cmd_assume_role)

    gci = sub.add_parser(
        "get-caller-identity",
        help="who the sidecar thinks you are",
        description="Call SecurityTokenService.GetCallerIdentity with the given credentials.",
    )
    _add_client_flags(gci)
    gci.set_defaults(func=_cmd_get_caller_identity)

    az = sub.add_parser(
        "authorize",
        help="ask a running sidecar whether a session may do something",
        description=(
            "Call Authorizer.Authorize with a session token (--session-token or "
            "$AWS_SESSION_TOKEN). Prints the decision, the deciding statements and the reason. "
            "Exit 0 when allowed, 1 when denied (explicitly or implicitly), 2 on an error."
        ),
    )
    az.add_argument("action", metavar="ACTION")
    az.add_argument("resource", metavar="RESOURCE")
    az.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE[:TYPE]",
        help="a context entry, e.g. s3:prefix=home/ or aws:RequestTag/team=a,b:STRING_LIST",
    )
    _add_client_flags(az)
    az.set_defaults(func=_cmd_authorize)

    sim = sub.add_parser(
        "simulate",
        help="evaluate policies as IAM's SimulateCustomPolicy does",
        description=(
            "Read a SimulateCustomPolicyRequest as protobuf JSON (on stdin, or from --input) and "
            "print the SimulateCustomPolicyResponse as JSON: one result per (action, resource) "
            "pair with the decision, the statements that decided it and the reason. SCPs by "
            "organization level go in orderedOrganizationPolicyInputList (root first, account "
            "last; each level {serviceControlPolicyInputList: [...]}), RCPs likewise in "
            "orderedResourceControlPolicyInputList ({resourceControlPolicyInputList}). This is the "
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
    _add_max_world_bytes(val)
    val.set_defaults(func=_cmd_validate)

    tst = sub.add_parser(
        "test",
        help="run policy tests against a world file (for CI)",
        description=(
            "Decide every case of the given test files (YAML; a directory stands for every "
            "*.iamtest.yaml file under it) against the world file, with the engine and the STS "
            "code the sidecar runs: role sessions, users and pods asking for actions, and "
            "AssumeRole calls. Prints one line per failed case with the expected and actual "
            "decision, the deciding statements and AWS's reason, then 'N passed, M failed'. "
            "Exit 0 when every case passes, 1 when any fails, 2 when the world or a test file "
            "is invalid (every problem printed as FILE: PATH: MESSAGE). The world's secrets "
            "are not read. The format: docs/POLICY-TESTS.md."
        ),
        epilog="example: iam-sidecar test --config world.yaml policy-tests/ --junit report.xml",
    )
    tst.add_argument("tests", nargs="+", metavar="TESTS", help="test files or directories")
    tst.add_argument("--config", required=True, help="the world file (YAML or JSON)")
    tst.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    tst.add_argument("--verbose", "-v", action="store_true", help="print passing cases too")
    _add_max_world_bytes(tst)
    tst.set_defaults(func=_cmd_test)

    acc = sub.add_parser(
        "access",
        help="who can assume a role, and what it may do",
        description=(
            "Report on one role of a world file, without a server. Who can assume it: each "
            "Allow statement of its trust policy with the assume actions it grants, its "
            "principals and conditions, and, for the AWS principals (accounts, users, roles), "
            "every identity of the world they name with the engine's answer for "
            "sts:AssumeRole on the role: allowed, allowed if <the conditions only a request "
            "can meet>, or denied with AWS's reason; trust Deny statements and the RCPs of the "
            "role's account that cover assume calls are listed as limits. What it may do: the "
            "Allow statements of its inline and managed policies as written (Action/NotAction, "
            "Resource/NotResource, Condition), their Deny statements as limits, and the "
            "guardrails: permissions boundary, the SCPs and RCPs from the organization root "
            "down to its account; session policies can only narrow it. --json prints the "
            "same as JSON (docs/ACCESS.md). Exit 0 with the report; 2 when the world file has "
            "problems (each printed as FILE: PATH: MESSAGE) or the role is not in it."
        ),
    )
    acc.add_argument("role_arn", metavar="ROLE_ARN", help="e.g. arn:aws:iam::111111111111:role/app")
    acc.add_argument("--config", help="the world file (YAML or JSON); default: the demo world")
    acc.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_max_world_bytes(acc)
    acc.set_defaults(func=_cmd_access)

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
            "before the next whole second, so every session issued up to now is denied) to the "
            "role in the world file, editing it in place with its comments and order kept. "
            "Running sidecars pick it up on reload. Revoking again moves the time forward."
        ),
    )
    rev.add_argument("role_arn", metavar="ROLE_ARN")
    rev.add_argument("--config", required=True, help="the world file to edit")
    rev.add_argument("--dry-run", action="store_true", help="print the change, do not write")
    rev.add_argument(
        "--before",
        help="revoke sessions issued before this ISO-8601 time (default: the next whole second)",
    )
    rev.set_defaults(func=_cmd_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
