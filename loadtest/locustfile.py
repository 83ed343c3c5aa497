"""Load scenarios for iam-sidecar serving the embedded demo world (sidecar/demo/world.yaml).

Run it with ``loadtest/run.py``, which starts a sidecar on 127.0.0.1 and a bounded headless
locust run against it. Each user (a simulated client with its own channel) starts by assuming
two roles as the demo user alice (SigV4-signed AssumeRole), then runs weighted tasks:

- ``Authorize [cache-hit]``: a few fixed reads of the reports bucket (allowed; cached after the
  first call);
- ``Authorize [cache-miss]``: reads of a new object every time (allowed, never cached);
- ``Authorize [deny-explicit]`` / ``[deny-implicit]``: reports/secret/* (an explicit Deny) and
  writes or other buckets (no Allow);
- ``Authorize [context]``: allowed reads that carry typed context entries;
- ``Authorize [condition]``: the orders-writer role, whose Allow has a StringEquals condition
  on aws:PrincipalTag/team (allowed), and an action it does not grant (implicit deny);
- ``BatchAuthorize [mixed]``: ten requests of the kinds above in one call;
- ``AssumeRole [fresh]`` then ``Authorize [new-token]``: new credentials, used at once;
- ``GetCallerIdentity [sigv4]`` / ``[bearer]``: as alice (signed), and as a role session.

Every answer is checked (decision, principal ARN, identity); a wrong one is a failure.
``--user-rps`` paces each user (tasks per second; 0 runs them back to back).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from grpc_user import GrpcUser
from locust import constant_throughput, events, task
from locust.exception import StopUser

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.client.sigv4 import sign_call
from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET

ACCOUNT = "111111111111"
APP_READER = f"arn:aws:iam::{ACCOUNT}:role/apps/app-reader"
ORDERS_WRITER = f"arn:aws:iam::{ACCOUNT}:role/apps/orders-writer"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
STS = "/iamsidecar.v1.SecurityTokenService/"
AUTHZ = "/iamsidecar.v1.Authorizer/"

ALLOWED = types_pb2.ALLOWED
EXPLICIT_DENY = types_pb2.EXPLICIT_DENY
IMPLICIT_DENY = types_pb2.IMPLICIT_DENY

HITS = [
    ("s3:GetObject", "arn:aws:s3:::reports/2026/q1.csv"),
    ("s3:GetObject", "arn:aws:s3:::reports/2026/q2.csv"),
    ("s3:GetObject", "arn:aws:s3:::reports/2026/q3.csv"),
    ("s3:GetObject", "arn:aws:s3:::reports/2026/q4.csv"),
    ("s3:ListBucket", "arn:aws:s3:::reports"),
]
EXPLICIT_DENIES = [
    ("s3:GetObject", f"arn:aws:s3:::reports/secret/payroll-{month:02}.csv")
    for month in range(1, 13)
]
IMPLICIT_DENIES = [
    ("s3:PutObject", "arn:aws:s3:::reports/2026/q1.csv"),
    ("s3:DeleteObject", "arn:aws:s3:::reports/2026/q2.csv"),
    ("s3:GetObject", "arn:aws:s3:::payroll/2026/01.csv"),
    ("dynamodb:GetItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders"),
]
_users = itertools.count(1)


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--user-rps",
        type=float,
        default=50.0,
        help="tasks per second per user (0: no pause between tasks)",
    )


def entry(key: str, values: list[str], kind: int) -> types_pb2.ContextEntry:
    return types_pb2.ContextEntry(key=key, values=values, type=kind)  # type: ignore[arg-type]


def decision_name(value: int) -> str:
    return str(types_pb2.Decision.Name(value))  # type: ignore[arg-type]


def expect(decision: int, principal: str | None = None) -> Any:
    def check(resp: authorizer_pb2.AuthorizeResponse) -> str | None:
        if resp.decision != decision:
            return f"expected {decision_name(decision)}, got {decision_name(resp.decision)}"
        if principal is not None and resp.principal_arn != principal:
            return f"expected principal {principal}, got {resp.principal_arn}"
        return None

    return check


class SidecarUser(GrpcUser):
    def wait_time(self) -> float:
        options = self.environment.parsed_options
        rate = getattr(options, "user_rps", 50.0) if options is not None else 50.0
        if rate <= 0:
            return 0.0
        return float(constant_throughput(rate)(self))

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        ch = self.channel
        self.n = next(_users)
        self.counter = itertools.count()
        self.authorize_rpc = ch.unary_unary(
            AUTHZ + "Authorize",
            request_serializer=authorizer_pb2.AuthorizeRequest.SerializeToString,
            response_deserializer=authorizer_pb2.AuthorizeResponse.FromString,
        )
        self.batch_rpc = ch.unary_unary(
            AUTHZ + "BatchAuthorize",
            request_serializer=authorizer_pb2.BatchAuthorizeRequest.SerializeToString,
            response_deserializer=authorizer_pb2.BatchAuthorizeResponse.FromString,
        )
        # Signed calls send the exact bytes they signed.
        self.assume_rpc = ch.unary_unary(
            STS + "AssumeRole",
            request_serializer=None,
            response_deserializer=sts_pb2.AssumeRoleResponse.FromString,
        )
        self.identity_rpc = ch.unary_unary(
            STS + "GetCallerIdentity",
            request_serializer=None,
            response_deserializer=sts_pb2.GetCallerIdentityResponse.FromString,
        )
        self.reader_token = self.writer_token = ""
        self.reader_arn = self.writer_arn = ""

    # -- helpers -----------------------------------------------------------------------------

    def assume(self, role_arn: str, session: str, scenario: str) -> str | None:
        raw = sts_pb2.AssumeRoleRequest(
            role_arn=role_arn, role_session_name=session
        ).SerializeToString()
        metadata = sign_call(
            STS + "AssumeRole",
            raw,
            access_key_id=DEMO_ACCESS_KEY_ID,
            secret_access_key=DEMO_SECRET,
        )
        role_name = role_arn.rsplit("/", 1)[-1]
        want = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session}"

        def check(resp: sts_pb2.AssumeRoleResponse) -> str | None:
            if resp.assumed_role_user.arn != want:
                return f"expected session {want}, got {resp.assumed_role_user.arn}"
            if not resp.credentials.session_token:
                return "no session token"
            return None

        resp = self.call(self.assume_rpc, raw, scenario, check=check, metadata=metadata)
        return None if resp is None else str(resp.credentials.session_token)

    def authorize(
        self,
        scenario: str,
        token: str,
        action: str,
        resource: str,
        want: int,
        principal: str,
        context: list[types_pb2.ContextEntry] | None = None,
    ) -> None:
        req = authorizer_pb2.AuthorizeRequest(
            session_token=token, action=action, resource=resource, context=context or []
        )
        self.call(self.authorize_rpc, req, scenario, check=expect(want, principal))

    def on_start(self) -> None:
        reader = self.assume(APP_READER, f"lt-reader-{self.n}", "on_start")
        writer = self.assume(ORDERS_WRITER, f"lt-writer-{self.n}", "on_start")
        if reader is None or writer is None:
            raise StopUser()
        self.reader_token, self.writer_token = reader, writer
        self.reader_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/app-reader/lt-reader-{self.n}"
        self.writer_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/orders-writer/lt-writer-{self.n}"

    # -- tasks -------------------------------------------------------------------------------

    @task(60)
    def authorize_cache_hit(self) -> None:
        action, resource = random.choice(HITS)
        self.authorize("cache-hit", self.reader_token, action, resource, ALLOWED, self.reader_arn)

    @task(8)
    def authorize_cache_miss(self) -> None:
        resource = f"arn:aws:s3:::reports/users/{self.n}/{next(self.counter)}.csv"
        self.authorize(
            "cache-miss", self.reader_token, "s3:GetObject", resource, ALLOWED, self.reader_arn
        )

    @task(8)
    def authorize_deny(self) -> None:
        if random.random() < 0.5:
            action, resource = random.choice(EXPLICIT_DENIES)
            scenario, want = "deny-explicit", EXPLICIT_DENY
        else:
            action, resource = random.choice(IMPLICIT_DENIES)
            scenario, want = "deny-implicit", IMPLICIT_DENY
        self.authorize(scenario, self.reader_token, action, resource, want, self.reader_arn)

    @task(8)
    def authorize_with_context(self) -> None:
        context = [
            entry("app:tenant", [f"tenant-{random.randrange(50)}"], types_pb2.STRING),
            entry("app:labels", ["finance", "quarterly"], types_pb2.STRING_LIST),
            entry("app:client-ip", ["10.1.2.3"], types_pb2.IP),
            entry("app:attempt", [str(random.randrange(1, 4))], types_pb2.NUMERIC),
            entry("app:internal", ["true"], types_pb2.BOOLEAN),
        ]
        action, resource = random.choice(HITS[:4])
        self.authorize(
            "context", self.reader_token, action, resource, ALLOWED, self.reader_arn, context
        )

    @task(4)
    def authorize_condition(self) -> None:
        order = f"arn:aws:orders:::order/{random.randrange(1000)}"
        if random.random() < 0.75:
            action, want = "orders:CreateOrder", ALLOWED
        else:
            action, want = "orders:DeleteOrder", IMPLICIT_DENY
        self.authorize("condition", self.writer_token, action, order, want, self.writer_arn)

    @task(4)
    def batch_authorize(self) -> None:
        items = [(a, r, ALLOWED) for a, r in random.sample(HITS, 4)]
        items += [
            ("s3:GetObject", f"arn:aws:s3:::reports/users/{self.n}/b{next(self.counter)}.csv",
             ALLOWED) for _ in range(2)
        ]  # fmt: skip
        items += [(a, r, EXPLICIT_DENY) for a, r in random.sample(EXPLICIT_DENIES, 2)]
        items += [(a, r, IMPLICIT_DENY) for a, r in random.sample(IMPLICIT_DENIES, 2)]
        random.shuffle(items)
        req = authorizer_pb2.BatchAuthorizeRequest(
            session_token=self.reader_token,
            requests=[authorizer_pb2.AuthorizeItem(action=a, resource=r) for a, r, _ in items],
        )

        def check(resp: authorizer_pb2.BatchAuthorizeResponse) -> str | None:
            if len(resp.results) != len(items):
                return f"expected {len(items)} results, got {len(resp.results)}"
            for (action, resource, want), got in zip(items, resp.results, strict=True):
                if got.decision != want:
                    return (
                        f"{action} on {resource}: expected {decision_name(want)}, "
                        f"got {decision_name(got.decision)}"
                    )
            return None

        self.call(self.batch_rpc, req, "mixed", check=check)

    @task(2)
    def assume_role_then_use(self) -> None:
        session = f"lt-{self.n}-{next(self.counter)}"
        token = self.assume(APP_READER, session, "fresh")
        if token is None:
            return
        self.authorize(
            "new-token",
            token,
            "s3:GetObject",
            "arn:aws:s3:::reports/2026/q1.csv",
            ALLOWED,
            f"arn:aws:sts::{ACCOUNT}:assumed-role/app-reader/{session}",
        )

    @task(3)
    def get_caller_identity(self) -> None:
        raw = sts_pb2.GetCallerIdentityRequest().SerializeToString()
        if random.random() < 0.5:
            scenario, want = "sigv4", ALICE
            metadata = sign_call(
                STS + "GetCallerIdentity",
                raw,
                access_key_id=DEMO_ACCESS_KEY_ID,
                secret_access_key=DEMO_SECRET,
            )
        else:
            scenario, want = "bearer", self.reader_arn
            metadata = [("authorization", f"Bearer {self.reader_token}")]

        def check(resp: sts_pb2.GetCallerIdentityResponse) -> str | None:
            if resp.arn != want or resp.account != ACCOUNT:
                return f"expected {want} in {ACCOUNT}, got {resp.arn} in {resp.account}"
            return None

        self.call(self.identity_rpc, raw, scenario, check=check, metadata=metadata)
