"""`iam-sidecar serve` as a real process: the README's demo quick start, SIGTERM drain, two
workers on one port, a unix socket, mTLS with SPIFFE ids, hot reload through files and
signals, and malformed input that must never take a worker down."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.server.status import error_info

from .conftest import (
    APP_READER,
    DEMO_ACCESS_KEY,
    DEMO_SECRET,
    ORDERS_SPIFFE,
    Pki,
    SidecarFactory,
    SidecarProcess,
    account,
    child_env,
    demo_world,
    dump_world,
    http_get,
    local_channel,
    make_pki,
    managed_policy,
    metric_value,
    run_cli,
    wait_until,
    write_atomically,
)

AUTHORIZE = "/iamsidecar.v1.Authorizer/Authorize"
BATCH_AUTHORIZE = "/iamsidecar.v1.Authorizer/BatchAuthorize"
ASSUME_ROLE = "/iamsidecar.v1.SecurityTokenService/AssumeRole"
GET_CALLER_IDENTITY = "/iamsidecar.v1.SecurityTokenService/GetCallerIdentity"
ALLOWED_OBJECT = "arn:aws:s3:::reports/q3.csv"
SECRET_OBJECT = "arn:aws:s3:::reports/secret/plan.txt"
ALLOWED = types_pb2.ALLOWED
EXPLICIT_DENY = types_pb2.EXPLICIT_DENY
IMPLICIT_DENY = types_pb2.IMPLICIT_DENY


def alice_token(sidecar: SidecarProcess, role_arn: str = APP_READER) -> str:
    with sidecar.alice() as client:
        return client.assume_role(role_arn, "process-test").credentials.session_token


def authorize_method(channel: grpc.Channel) -> Any:
    return channel.unary_unary(
        AUTHORIZE,
        request_serializer=authorizer_pb2.AuthorizeRequest.SerializeToString,
        response_deserializer=authorizer_pb2.AuthorizeResponse.FromString,
    )


def decision(channel: grpc.Channel, token: str, action: str, resource: str, **context: Any) -> int:
    """The decision of one Authorize call (context: key -> (values, type))."""
    entries = [types_pb2.ContextEntry(key=k, values=v, type=t) for k, (v, t) in context.items()]
    req = authorizer_pb2.AuthorizeRequest(
        session_token=token, action=action, resource=resource, context=entries
    )
    resp = authorize_method(channel)(req, timeout=5)
    result: int = resp.decision
    return result


def exports(stdout: str) -> dict[str, str]:
    """`export NAME=VALUE` lines as a dict."""
    out = {}
    for line in stdout.splitlines():
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").partition("=")
        out[name] = value
    return out


# -- 1. the README's quick start ----------------------------------------------------------------


def test_demo_quick_start_with_the_cli(sidecars: SidecarFactory) -> None:
    """`serve` with no --config serves the demo world; the CLI assumes app-reader and gets one
    allowed and one explicitly denied answer, and no secret reaches the log."""
    sidecar = sidecars.start()
    target = ["--target", sidecar.target]

    env = child_env(AWS_ACCESS_KEY_ID=DEMO_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=DEMO_SECRET)
    assumed = run_cli(
        "assume-role", APP_READER, "--role-session-name", "demo", "--export", *target, env=env
    )
    assert assumed.returncode == 0, assumed.stderr
    creds = exports(assumed.stdout)
    assert set(creds) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert creds["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    session_env = child_env(**creds)  # as after `eval "$(iam-sidecar assume-role ... --export)"`

    allowed = run_cli("authorize", "s3:GetObject", ALLOWED_OBJECT, *target, env=session_env)
    assert allowed.returncode == 0, allowed.stderr
    answer = json.loads(allowed.stdout)
    assert answer["decision"] == "ALLOWED"
    assert answer["principal"] == "arn:aws:sts::111111111111:assumed-role/app-reader/demo"

    denied = run_cli("authorize", "s3:GetObject", SECRET_OBJECT, *target, env=session_env)
    assert denied.returncode == 1, denied.stderr
    answer = json.loads(denied.stdout)
    assert answer["decision"] == "EXPLICIT_DENY"
    assert [m["sid"] for m in answer["matched_statements"]] == ["DenySecretReports"]

    who = run_cli("get-caller-identity", *target, env=session_env)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Arn"] == "arn:aws:sts::111111111111:assumed-role/app-reader/demo"

    log = sidecar.log()
    lines = [line for line in sidecar.log_text().splitlines() if line.strip()]
    assert log, lines
    assert len(log) == len(lines), "every stderr line is a JSON log record"
    assert sidecar.stdout_text() == ""
    messages = [r["msg"] for r in log]
    assert any("serving the embedded demo world" in m for m in messages), messages
    serving = next(r for r in log if r["msg"] == "serving")
    assert "embedded demo world" in serving["world"]
    warnings = [r for r in log if r["level"] == "warning"]
    assert any("development key" in r["msg"] for r in warnings), warnings
    text = sidecar.log_text()
    for secret in (
        DEMO_SECRET,
        creds["AWS_SECRET_ACCESS_KEY"],
        creds["AWS_SESSION_TOKEN"],
        creds["AWS_SESSION_TOKEN"][:40],
    ):
        assert secret not in text


# -- 2. SIGTERM ---------------------------------------------------------------------------------


def test_sigterm_drains_then_exits_zero(sidecars: SidecarFactory) -> None:
    """On SIGTERM the sidecar stops being ready, calls in flight end well (never INTERNAL or a
    wrong decision), and the process logs draining then stopped and exits 0 within --grace."""
    sidecar = sidecars.start("--grace", "5")
    token = alice_token(sidecar)
    expected = {ALLOWED_OBJECT: ALLOWED, SECRET_OBJECT: EXPLICIT_DENY}
    results: list[tuple[grpc.StatusCode, list[tuple[str, int]]]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def call_loop(batch: bool) -> None:
        resources = [ALLOWED_OBJECT, SECRET_OBJECT] * (250 if batch else 1)
        with local_channel(sidecar.target) as channel:
            one = authorize_method(channel)
            many = channel.unary_unary(
                BATCH_AUTHORIZE,
                request_serializer=authorizer_pb2.BatchAuthorizeRequest.SerializeToString,
                response_deserializer=authorizer_pb2.BatchAuthorizeResponse.FromString,
            )
            unavailable = 0
            deadline = time.monotonic() + 20
            for i in range(20_000):
                if stop.is_set() or time.monotonic() > deadline or unavailable >= 5:
                    return
                try:
                    if batch:
                        items = [
                            authorizer_pb2.AuthorizeItem(action="s3:GetObject", resource=r)
                            for r in resources
                        ]
                        resp = many(
                            authorizer_pb2.BatchAuthorizeRequest(
                                session_token=token, requests=items
                            ),
                            timeout=10,
                        )
                        got = list(zip(resources, [r.decision for r in resp.results], strict=True))
                    else:
                        resource = resources[i % 2]
                        r = one(
                            authorizer_pb2.AuthorizeRequest(
                                session_token=token, action="s3:GetObject", resource=resource
                            ),
                            timeout=10,
                        )
                        got = [(resource, r.decision)]
                    outcome = (grpc.StatusCode.OK, got)
                except grpc.RpcError as err:
                    outcome = (err.code(), [])
                    if err.code() == grpc.StatusCode.UNAVAILABLE:
                        unavailable += 1
                        time.sleep(0.02)
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=call_loop, args=(b,), daemon=True) for b in (False, True)]
    for t in threads:
        t.start()
    try:

        def ok_calls() -> int:
            with lock:
                return sum(1 for code, _ in results if code == grpc.StatusCode.OK)

        assert wait_until(lambda: ok_calls() >= 20, 10), "no calls got through before SIGTERM"
        signalled = time.monotonic()
        sidecar.signal(signal.SIGTERM)

        def not_ready() -> bool:
            try:
                status, _ = http_get(sidecar.http_port, "/readyz", timeout=1)
            except OSError:
                return True  # the port is closed
            return status == 503

        assert wait_until(not_ready, 5, interval=0.01), "/readyz still 200 after SIGTERM"
        code = sidecar.proc.wait(timeout=5 + 3)
        elapsed = time.monotonic() - signalled
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert code == 0, sidecar.log_text()
    assert elapsed < 5 + 2, elapsed

    assert not any(t.is_alive() for t in threads)
    codes = {code for code, _ in results}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, (
        codes
    )
    decided = [pair for code, pairs in results if code == grpc.StatusCode.OK for pair in pairs]
    assert len(decided) > 20
    wrong = [(r, d) for r, d in decided if d != expected[r]]
    assert not wrong, wrong[:5]

    messages = sidecar.messages()
    assert "draining" in messages, messages
    assert "stopped" in messages, messages
    assert messages.index("draining") < messages.index("stopped")
    assert not any(r["level"] == "error" for r in sidecar.log()), sidecar.log_text()


def test_sigterm_answers_calls_already_sent(sidecars: SidecarFactory) -> None:
    """Calls a client has already sent when SIGTERM arrives are answered, not cancelled, when
    the grace period is long enough for them."""
    sidecar = sidecars.start("--grace", "5")
    token = alice_token(sidecar)
    items = [
        authorizer_pb2.AuthorizeItem(action="s3:GetObject", resource=f"{ALLOWED_OBJECT}.{i}")
        for i in range(1000)
    ]
    request = authorizer_pb2.BatchAuthorizeRequest(session_token=token, requests=items)
    outcomes: list[str] = []
    with local_channel(sidecar.target) as channel:
        batch = channel.unary_unary(
            BATCH_AUTHORIZE,
            request_serializer=authorizer_pb2.BatchAuthorizeRequest.SerializeToString,
            response_deserializer=authorizer_pb2.BatchAuthorizeResponse.FromString,
        )
        batch(request, timeout=10)  # connected and warm
        calls = [batch.future(request, timeout=15) for _ in range(12)]  # ~1 s of work queued
        calls[0].result()  # the server is busy with the rest
        sidecar.signal(signal.SIGTERM)
        for call in calls:
            try:
                results = call.result().results
                assert len(results) == 1000
                assert {r.decision for r in results} == {ALLOWED}
                outcomes.append("OK")
            except grpc.RpcError as err:
                outcomes.append(err.code().name)
    assert sidecar.proc.wait(timeout=5 + 3) == 0
    assert outcomes == ["OK"] * len(calls), outcomes


# -- 3. two workers ---------------------------------------------------------------------------


def test_two_workers_share_one_port_and_a_key_set(sidecars: SidecarFactory, tmp_path: Path) -> None:
    """`--workers 2` runs two serving processes on one port; a token minted by one verifies on
    the other (a shared --keys file); SIGTERM stops both and the parent exits 0."""
    keys = tmp_path / "keys.json"
    generated = run_cli("keys", "generate", "--out", str(keys))
    assert generated.returncode == 0, generated.stderr
    sidecar = sidecars.start("--workers", "2", "--keys", str(keys), "--grace", "3", workers=2)

    serving = [r for r in sidecar.log() if r["msg"] == "serving"]
    pids = {r["pid"] for r in serving}
    assert len(serving) == 2, serving
    assert len(pids) == 2, serving
    assert sidecar.proc.pid not in pids
    assert {r["grpc_port"] for r in serving} == {int(sidecar.target.rsplit(":", 1)[1])}

    token = alice_token(sidecar)  # minted by whichever worker took that connection
    for _ in range(50):
        with local_channel(sidecar.target) as channel:  # a new connection each time
            assert decision(channel, token, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED

    # Whichever worker answers the scrape (fresh connections), /metrics shows both workers'
    # calls (tests/server/test_metrics_workers.py checks that each served some).
    for _ in range(10):
        text = sidecar.metrics()
        authorized = metric_value(
            text, "grpc_server_handled_total", grpc_method="Authorize", grpc_code="OK"
        )
        assumed = metric_value(
            text, "grpc_server_handled_total", grpc_method="AssumeRole", grpc_code="OK"
        )
        assert (authorized, assumed) == (50, 1), text

    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(timeout=3 + 5) == 0, sidecar.log_text()
    assert sidecar.messages().count("stopped") == 2, sidecar.log_text()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize(
    ("args", "loop"), [((), "uvloop"), (("--event-loop", "asyncio"), "asyncio")]
)
def test_event_loop_is_uvloop_unless_asked(
    sidecars: SidecarFactory, args: tuple[str, ...], loop: str
) -> None:
    """`serve` runs on uvloop by default (installed with the sidecar) and says so in its
    "serving" line; `--event-loop asyncio` serves the same on asyncio's own loop."""
    sidecar = sidecars.start(*args)
    (serving,) = [r for r in sidecar.log() if r["msg"] == "serving"]
    assert serving["event_loop"] == loop
    token = alice_token(sidecar)
    with local_channel(sidecar.target) as channel:
        assert decision(channel, token, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED


@pytest.mark.parametrize(
    ("experiments", "expected"),
    [(None, "iomgr"), ("event_engine_listener", "event_engine")],
)
def test_serve_chooses_the_iomgr_listener_unless_told(
    sidecars: SidecarFactory, experiments: str | None, expected: str
) -> None:
    """`serve` turns off gRPC's EventEngine TCP listener before grpc loads (one thread hand-off
    fewer per call), says so in its "serving" line, and leaves an operator's GRPC_EXPERIMENTS
    that names the listener as it is. The installed grpc knows the experiment: it logs
    "Unknown experiment" for a name it does not."""
    env = child_env(**({"GRPC_EXPERIMENTS": experiments} if experiments else {}))
    sidecar = sidecars.start(env=env)
    (serving,) = [r for r in sidecar.log() if r["msg"] == "serving"]
    assert serving["grpc_listener"] == expected
    assert "Unknown experiment" not in sidecar.log_text(), sidecar.log_text()
    token = alice_token(sidecar)
    with local_channel(sidecar.target) as channel:
        assert decision(channel, token, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED


def test_event_loop_refuses_an_unknown_loop() -> None:
    out = run_cli("serve", "--event-loop", "trio")
    assert out.returncode == 2
    assert "invalid choice: 'trio'" in out.stderr


# -- 4. unix socket ---------------------------------------------------------------------------


def test_unix_socket(sidecars: SidecarFactory, tmp_path: Path) -> None:
    """`--listen unix:///path` serves STS and Authorize to a client dialing unix:///path."""
    sock = tmp_path / "sidecar.sock"
    assert len(str(sock)) < 100, "the unix socket path is too long for sockaddr_un"
    sidecar = sidecars.start(listen=f"unix://{sock}")
    assert sidecar.target.startswith("unix:///")
    assert sock.is_socket()

    with sidecar.alice() as client:
        assert client.get_caller_identity().arn == "arn:aws:iam::111111111111:user/alice"
        creds = client.assume_role(APP_READER, "over-unix").credentials
    with sidecar.client(session_token=creds.session_token) as client:
        assert client.authorize("s3:GetObject", ALLOWED_OBJECT).decision == ALLOWED
        assert client.authorize("s3:GetObject", SECRET_OBJECT).decision == EXPLICIT_DENY
        caller = client.get_caller_identity()
    assert caller.arn == "arn:aws:sts::111111111111:assumed-role/app-reader/over-unix"


# -- 5. mTLS and SPIFFE -------------------------------------------------------------------------

UNKNOWN_SPIFFE = "spiffe://cluster.local/ns/shop/sa/stranger"
TLS_ONLY = "arn:aws:iam::111111111111:role/apps/tls-only"


def tls_world() -> str:
    """The demo world plus a role (trusting the orders service) whose only Allow needs
    aws:SecureTransport."""
    doc = demo_world()
    account(doc)["roles"].append(
        {
            "name": "tls-only",
            "path": "/apps/",
            "trust_policy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "orders.mesh.local"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "inline_policies": {
                "OnlyOverTls": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ReadOverTls",
                            "Effect": "Allow",
                            "Action": "s3:GetObject",
                            "Resource": "*",
                            "Condition": {"Bool": {"aws:SecureTransport": "true"}},
                        }
                    ],
                }
            },
        }
    )
    return dump_world(doc)


class MtlsSetup:
    def __init__(self, pki: Pki, tls: SidecarProcess, plain: SidecarProcess) -> None:
        self.pki = pki
        self.tls = tls
        self.plain = plain

    def channel(self, client: str | None) -> grpc.Channel:
        return local_channel(self.tls.target, self.pki.channel_credentials(client))


@pytest.fixture(scope="module")
def mtls(module_sidecars: SidecarFactory, tmp_path_factory: pytest.TempPathFactory) -> MtlsSetup:
    directory = tmp_path_factory.mktemp("mtls")
    uri = x509.UniformResourceIdentifier
    pki = make_pki(
        directory,
        {
            "orders": [uri(ORDERS_SPIFFE)],
            "stranger": [uri(UNKNOWN_SPIFFE)],
            "dns-san": [x509.DNSName(ORDERS_SPIFFE)],
            "two-uris": [uri(UNKNOWN_SPIFFE), uri(ORDERS_SPIFFE)],
        },
    )
    world = directory / "world.yaml"
    world.write_text(tls_world())
    keys = directory / "keys.json"
    assert run_cli("keys", "generate", "--out", str(keys)).returncode == 0
    env = child_env(IAM_SIDECAR_DEMO_SECRET=DEMO_SECRET)
    common = ("--config", str(world), "--keys", str(keys), "--grace", "1")
    tls = module_sidecars.start(
        *common,
        "--tls-cert", str(pki.server_cert),
        "--tls-key", str(pki.server_key),
        "--client-ca", str(pki.ca_path),
        env=env,
        name="tls",
    )  # fmt: skip
    plain = module_sidecars.start(*common, env=env, name="plain")
    return MtlsSetup(pki, tls, plain)


def sts_call(channel: grpc.Channel, path: str, request: Any, response: Any) -> Any:
    method = channel.unary_unary(
        path, request_serializer=None, response_deserializer=response.FromString
    )
    return method(request.SerializeToString(), timeout=5)


def assume_by_certificate(channel: grpc.Channel, role_arn: str) -> sts_pb2.AssumeRoleResponse:
    request = sts_pb2.AssumeRoleRequest(role_arn=role_arn, role_session_name="mesh")
    response: sts_pb2.AssumeRoleResponse = sts_call(
        channel, ASSUME_ROLE, request, sts_pb2.AssumeRoleResponse
    )
    return response


def caller_arn(channel: grpc.Channel) -> str:
    response = sts_call(
        channel,
        GET_CALLER_IDENTITY,
        sts_pb2.GetCallerIdentityRequest(),
        sts_pb2.GetCallerIdentityResponse,
    )
    arn: str = response.arn
    return arn


def test_mtls_spiffe_identity_and_secure_transport(mtls: MtlsSetup) -> None:
    """Over mTLS the orders service's SPIFFE id is a caller that may assume app-reader, an
    unknown SPIFFE id is UNAUTHENTICATED, a client without a certificate cannot connect, and
    Authorize sees aws:SecureTransport=true on TLS only (a caller cannot send it)."""
    with mtls.channel("orders") as channel:
        assert caller_arn(channel) == ORDERS_SPIFFE
        session = assume_by_certificate(channel, APP_READER)
        assert session.assumed_role_user.arn == (
            "arn:aws:sts::111111111111:assumed-role/app-reader/mesh"
        )
        reader = session.credentials.session_token
        assert decision(channel, reader, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED
        assert decision(channel, reader, "s3:GetObject", SECRET_OBJECT) == EXPLICIT_DENY
        tls_only = assume_by_certificate(channel, TLS_ONLY).credentials.session_token
        assert decision(channel, tls_only, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED

    with local_channel(mtls.plain.target) as channel:  # same keys: the token verifies here
        assert decision(channel, reader, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED
        assert decision(channel, tls_only, "s3:GetObject", ALLOWED_OBJECT) == IMPLICIT_DENY
        forged = {"aws:SecureTransport": (["true"], types_pb2.BOOLEAN)}
        with pytest.raises(grpc.RpcError) as refused_key:  # only the sidecar sets it
            decision(channel, tls_only, "s3:GetObject", ALLOWED_OBJECT, **forged)
        assert refused_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "aws:SecureTransport" in (refused_key.value.details() or "")
        with pytest.raises(grpc.RpcError) as anonymous:
            caller_arn(channel)  # no certificate on plaintext: nobody
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with mtls.channel("stranger") as channel:
        for call in (
            lambda: caller_arn(channel),
            lambda: assume_by_certificate(channel, APP_READER),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            info = error_info(refused.value)
            assert info is not None
            assert info.reason == "MissingAuthenticationToken"

    with mtls.channel(None) as channel, pytest.raises(grpc.RpcError) as no_cert:
        caller_arn(channel)
    assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE
    assert mtls.tls.alive()


@pytest.mark.parametrize("client", ["dns-san", "two-uris"])
def test_spiffe_id_only_from_a_single_uri_san(mtls: MtlsSetup, client: str) -> None:
    """A certificate whose SPIFFE-looking name is a DNS SAN, or that carries two URI SANs, is
    not a SPIFFE identity (X.509-SVID: exactly one URI SAN) and is refused."""
    with mtls.channel(client) as channel, pytest.raises(grpc.RpcError) as refused:
        caller_arn(channel)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- 6. hot reload ------------------------------------------------------------------------------

NEW_OBJECT = "arn:aws:s3:::reports/new.csv"


def world_text(put_allowed: bool) -> str:
    """The demo world; with ``put_allowed`` its ReportsRead policy also allows s3:PutObject."""
    doc = demo_world()
    statement = managed_policy(doc, "ReportsRead")["document"]["Statement"][0]
    if put_allowed:
        statement["Action"] = [*statement["Action"], "s3:PutObject"]
    return dump_world(doc)


def test_reload_through_files_configmap_swaps_and_sighup(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    """A rewritten world file is applied within seconds, a broken one keeps the last good world
    (reported in the log and the reload metric), a ConfigMap symlink swap is applied, and
    SIGHUP reloads."""
    config = tmp_path / "world.yaml"
    config.write_text(world_text(put_allowed=False))
    sidecar = sidecars.start(
        "--config", str(config), "--reload-interval", "0.2",
        env=child_env(IAM_SIDECAR_DEMO_SECRET=DEMO_SECRET),
    )  # fmt: skip
    token = alice_token(sidecar)
    channel = local_channel(sidecar.target)

    def put() -> int:
        return decision(channel, token, "s3:PutObject", NEW_OBJECT)

    def reloads(result: str) -> float:
        return sidecar.metric("iam_sidecar_reloads_total", result=result)

    def becomes(expected: int) -> bool:
        return bool(wait_until(lambda: put() == expected, 3, interval=0.05))

    with channel:
        assert put() == IMPLICIT_DENY
        generation = sidecar.metric("iam_sidecar_world_generation")

        # an atomic rewrite that adds an Allow
        write_atomically(config, world_text(put_allowed=True))
        assert becomes(ALLOWED), sidecar.log_text()
        assert sidecar.metric("iam_sidecar_world_generation") > generation
        assert reloads("success") >= 1

        # a broken file: the last good world keeps serving
        failures = reloads("failure")
        write_atomically(config, "accounts:\n  - id: '111111111111'\n    roles: [\n")
        assert wait_until(lambda: reloads("failure") > failures, 3), sidecar.log_text()
        assert put() == ALLOWED
        assert decision(channel, token, "s3:GetObject", SECRET_OBJECT) == EXPLICIT_DENY
        failed = [r for r in sidecar.log() if r["msg"].startswith("reload failed")]
        assert failed, sidecar.log_text()
        assert failed[-1]["level"] == "error"
        assert failed[-1]["why"] == "file changed"
        assert str(config) in failed[-1]["error"]
        assert "line" in failed[-1]["error"]

        # a slow in-place (non-atomic) write: whatever the watcher saw halfway, the finished
        # file is what ends up served
        text = world_text(put_allowed=False)
        with config.open("w") as fh:
            fh.write(text[: len(text) // 2])
            fh.flush()
            time.sleep(0.5)  # more than two reload intervals with half a file
            fh.write(text[len(text) // 2 :])
        assert becomes(IMPLICIT_DENY), sidecar.log_text()
        assert sidecar.alive()

        # Kubernetes ConfigMap layout: world.yaml -> ..data/world.yaml, ..data -> ..<timestamp>
        first = tmp_path / "..2026_01_01_00_00_00.000000001"
        first.mkdir()
        (first / "world.yaml").write_text(world_text(put_allowed=True))
        os.symlink(first.name, tmp_path / "..data")
        link = tmp_path / "world.yaml.new"
        os.symlink("..data/world.yaml", link)
        os.replace(link, config)  # the served path becomes the ConfigMap symlink
        assert becomes(ALLOWED), sidecar.log_text()

        second = tmp_path / "..2026_01_01_00_05_00.000000002"
        second.mkdir()
        (second / "world.yaml").write_text(world_text(put_allowed=False))
        data_tmp = tmp_path / "..data_tmp"
        os.symlink(second.name, data_tmp)
        os.replace(data_tmp, tmp_path / "..data")  # the kubelet's atomic swap
        assert becomes(IMPLICIT_DENY), sidecar.log_text()

        # SIGHUP reloads even when nothing changed
        successes = reloads("success")
        sidecar.signal(signal.SIGHUP)
        assert wait_until(lambda: reloads("success") > successes, 3), sidecar.log_text()
        assert any(r.get("why") == "SIGHUP" for r in sidecar.log() if r["msg"] == "reloaded")
        assert put() == IMPLICIT_DENY
    assert sidecar.alive()


# -- 7. malformed input -------------------------------------------------------------------------


def raw_authorize(channel: grpc.Channel, body: bytes) -> tuple[grpc.StatusCode, bytes]:
    method = channel.unary_unary(AUTHORIZE, request_serializer=None, response_deserializer=None)
    try:
        return grpc.StatusCode.OK, method(body, timeout=10)
    except grpc.RpcError as err:
        return err.code(), b""


@pytest.fixture
def demo_sidecar(sidecars: SidecarFactory) -> SidecarProcess:
    return sidecars.start()


def test_malformed_input_never_kills_the_worker(demo_sidecar: SidecarProcess) -> None:
    """Bytes that are not protobuf, a context value of the wrong type, too many context entries
    and an oversized message are refused (INVALID_ARGUMENT, RESOURCE_EXHAUSTED for the size);
    unicode edge cases get a correct answer or INVALID_ARGUMENT; the same process keeps
    answering."""
    sidecar = demo_sidecar
    token = alice_token(sidecar)
    pid = next(r["pid"] for r in sidecar.log() if r["msg"] == "serving")

    def request(action: str, resource: str, context: list[types_pb2.ContextEntry]) -> bytes:
        return authorizer_pb2.AuthorizeRequest(
            session_token=token, action=action, resource=resource, context=context
        ).SerializeToString()

    def entry(key: str, value: str, kind: int = types_pb2.STRING) -> types_pb2.ContextEntry:
        return types_pb2.ContextEntry(key=key, values=[value], type=kind)  # type: ignore[arg-type]

    get = "s3:GetObject"
    refused: dict[str, tuple[bytes, set[grpc.StatusCode]]] = {
        "truncated length": (b"\x0a\xff\xff\xff\xff\x0f", {grpc.StatusCode.INVALID_ARGUMENT}),
        "invalid utf-8 string": (b"\x0a\x02\xff\xfe", {grpc.StatusCode.INVALID_ARGUMENT}),
        "bad wire type": (b"\xff\xff\xff", {grpc.StatusCode.INVALID_ARGUMENT}),
        "IP that is not one": (
            request(get, ALLOWED_OBJECT, [entry("aws:SourceIp", "nope", types_pb2.IP)]),
            {grpc.StatusCode.INVALID_ARGUMENT},
        ),
        "custom key typed IP": (
            request(get, ALLOWED_OBJECT, [entry("app:client", "nope", types_pb2.IP)]),
            {grpc.StatusCode.INVALID_ARGUMENT},
        ),
        "300 context entries": (
            request(get, ALLOWED_OBJECT, [entry(f"app:k{i}", "v") for i in range(300)]),
            {grpc.StatusCode.INVALID_ARGUMENT},
        ),
        "8 MiB message": (
            request(get, ALLOWED_OBJECT, [entry("app:big", "x" * (8 << 20))]),
            {grpc.StatusCode.RESOURCE_EXHAUSTED},
        ),
    }
    # Valid protobuf with odd text: a correct decision, or INVALID_ARGUMENT; never INTERNAL.
    unicode_cases = {
        "NUL in the action": (request("s3:GetObject\x00", ALLOWED_OBJECT, []), IMPLICIT_DENY),
        "NUL in the resource": (request(get, "arn:aws:s3:::reports/secret/\x00", []), EXPLICIT_DENY),
        "RTL marks": (
            request(get, "arn:aws:s3:::reports/\u202e\u200fvsc.3q", []), ALLOWED
        ),
        "4-byte emoji in the resource": (
            request(get, "arn:aws:s3:::reports/secret/\U0001f600.txt", []), EXPLICIT_DENY
        ),
        "4-byte emoji in the action": (
            request("s3:Get\U0001f600Object", ALLOWED_OBJECT, []), IMPLICIT_DENY
        ),
        "emoji context key": (
            request(get, ALLOWED_OBJECT, [entry("app:\U0001f600\u202e", "\x00\U0001f4a9")]),
            ALLOWED,
        ),
    }  # fmt: skip

    normal = request(get, ALLOWED_OBJECT, [])
    problems = []
    with local_channel(sidecar.target) as channel:
        for name, (body, codes) in refused.items():
            code, _ = raw_authorize(channel, body)
            if code not in codes:
                problems.append(f"{name}: {code}")
            code, out = raw_authorize(channel, normal)
            assert code == grpc.StatusCode.OK, f"after {name}: {code}"
            assert authorizer_pb2.AuthorizeResponse.FromString(out).decision == ALLOWED
        for name, (body, expected) in unicode_cases.items():
            code, out = raw_authorize(channel, body)
            if code == grpc.StatusCode.OK:
                got = authorizer_pb2.AuthorizeResponse.FromString(out).decision
                if got != expected:
                    problems.append(f"{name}: {types_pb2.Decision.Name(got)}")
            elif code != grpc.StatusCode.INVALID_ARGUMENT:
                problems.append(f"{name}: {code}")
            code, _ = raw_authorize(channel, normal)
            assert code == grpc.StatusCode.OK, f"after {name}: {code}"
    assert not problems, problems
    assert sidecar.alive()
    assert [r["pid"] for r in sidecar.log() if r["msg"] == "serving"] == [pid]
    assert not [r for r in sidecar.log() if r["level"] == "error"], sidecar.log_text()
    handled = sidecar.metrics()
    assert metric_value(handled, "grpc_server_handled_total", grpc_code="INTERNAL") == 0
    assert metric_value(handled, "grpc_server_handled_total", grpc_code="INVALID_ARGUMENT") >= 6


def test_unknown_context_type_is_invalid_argument(demo_sidecar: SidecarProcess) -> None:
    """A context entry whose ContextKeyType is not one of the enum's values is INVALID_ARGUMENT."""
    token = alice_token(demo_sidecar)
    body = authorizer_pb2.AuthorizeRequest(
        session_token=token,
        action="s3:GetObject",
        resource=ALLOWED_OBJECT,
        context=[types_pb2.ContextEntry(key="app:k", values=["v"], type=99)],  # type: ignore[arg-type]
    ).SerializeToString()
    with local_channel(demo_sidecar.target) as channel:
        code, _ = raw_authorize(channel, body)
        assert raw_authorize(channel, authorizer_pb2.AuthorizeRequest(
            session_token=token, action="s3:GetObject", resource=ALLOWED_OBJECT
        ).SerializeToString())[0] == grpc.StatusCode.OK  # fmt: skip
    assert demo_sidecar.alive()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
