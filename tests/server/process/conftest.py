"""Helpers for the process-level tests: start `iam-sidecar serve` as a real process on loopback
ports or a unix socket, wait for /readyz, read its JSON log, scrape /metrics, run CLI commands,
and kill whatever is still running at teardown."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client.parser import text_string_to_metric_families

from sidecar.client.client import SidecarClient

ROOT = Path(__file__).resolve().parents[3]
DEMO_WORLD = ROOT / "sidecar" / "demo" / "world.yaml"
DEMO_ACCESS_KEY = "AKIADEMOALICE0000001"
DEMO_SECRET = "DemoSecretForAliceDoNotUseInProduction00"
APP_READER = "arn:aws:iam::111111111111:role/apps/app-reader"
ORDERS_SPIFFE = "spiffe://cluster.local/ns/orders/sa/orders"
READY_TIMEOUT = 15.0
CLI_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without AWS credentials, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("IAM_SIDECAR_DEMO_SECRET", None)
    env.pop("GRPC_EXPERIMENTS", None)  # `serve` chooses its gRPC listener itself
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`iam-sidecar ARGS` as a subprocess (bounded by CLI_TIMEOUT)."""
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env if env is not None else child_env(),
        timeout=CLI_TIMEOUT,
        check=False,
    )


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET http://127.0.0.1:PORT/PATH on a fresh connection: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded in time); return it, or
    the last falsy value on timeout."""
    deadline = time.monotonic() + timeout
    result = predicate()
    while not result and time.monotonic() < deadline:
        time.sleep(interval)
        result = predicate()
    return result


def local_channel(target: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    """A channel with its own connection (not shared through grpc's global subchannel pool)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    if credentials is not None:
        return grpc.secure_channel(target, credentials, options=options)
    return grpc.insecure_channel(target, options=options)


@dataclass
class SidecarProcess:
    proc: subprocess.Popen[bytes]
    target: str  # the gRPC target a client dials
    http_port: int
    log_path: Path
    args: list[str] = field(default_factory=list)

    def log(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines, e.g. grpc's own, are skipped)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    out.append(record)
        return out

    def log_text(self) -> str:
        """Everything written to stderr (the log) so far."""
        return self.log_path.read_text(errors="replace")

    def stdout_text(self) -> str:
        return self.log_path.with_suffix(".stdout").read_text(errors="replace")

    def messages(self) -> list[str]:
        return [str(r.get("msg")) for r in self.log()]

    def metrics(self) -> str:
        status, body = http_get(self.http_port, "/metrics")
        assert status == 200, body
        return body

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.metrics(), name, **labels)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def client(self, **kwargs: Any) -> SidecarClient:
        return SidecarClient(self.target, **kwargs)

    def alice(self) -> SidecarClient:
        """A client signing with the demo user's long-term key."""
        return self.client(access_key_id=DEMO_ACCESS_KEY, secret_access_key=DEMO_SECRET)


class SidecarFactory:
    """Starts sidecar processes and kills any that are still running at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[SidecarProcess] = []
        self._files: list[Any] = []

    def start(
        self,
        *args: str,
        listen: str | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        name: str = "serve",
    ) -> SidecarProcess:
        http_port = free_port()
        if listen is None:
            listen = f"127.0.0.1:{free_port()}"
        log_path = self.directory / f"{name}-{len(self.started)}.log"
        log_file = log_path.open("wb")
        stdout_file = log_path.with_suffix(".stdout").open("wb")
        self._files += [log_file, stdout_file]
        argv = [
            sys.executable, "-m", "sidecar", "serve",
            "--listen", listen, "--http-listen", f"127.0.0.1:{http_port}", *args,
        ]  # fmt: skip
        proc = subprocess.Popen(
            argv,
            stdout=stdout_file,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env if env is not None else child_env(),
            start_new_session=True,  # its own process group: teardown reaches forked workers
        )
        sidecar = SidecarProcess(proc, listen, http_port, log_path, argv)
        self.started.append(sidecar)
        self._wait_ready(sidecar, workers)
        return sidecar

    @staticmethod
    def _wait_ready(sidecar: SidecarProcess, workers: int) -> None:
        def ready() -> bool:
            if not sidecar.alive():
                raise AssertionError(
                    f"the sidecar exited with {sidecar.proc.returncode}:\n{sidecar.log_text()}"
                )
            try:
                status, _ = http_get(sidecar.http_port, "/readyz", timeout=1.0)
            except OSError:
                return False
            serving = sum(1 for m in sidecar.messages() if m == "serving")
            return status == 200 and serving >= workers

        if not wait_until(ready, READY_TIMEOUT, interval=0.05):
            raise AssertionError(f"the sidecar was not ready in {READY_TIMEOUT}s:\n"
                                 f"{sidecar.log_text()}")  # fmt: skip

    def close(self) -> None:
        for sidecar in self.started:
            if sidecar.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(sidecar.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    sidecar.proc.wait(timeout=10)
            else:
                # the leader is gone; forked workers may not be
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(sidecar.proc.pid, signal.SIGKILL)
        for f in self._files:
            f.close()


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[SidecarFactory]:
    factory = SidecarFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_sidecars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarFactory]:
    factory = SidecarFactory(tmp_path_factory.mktemp("sidecars"))
    try:
        yield factory
    finally:
        factory.close()


# -- world files --------------------------------------------------------------------------------


def demo_world() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEMO_WORLD.read_text())
    return doc


def account(doc: dict[str, Any]) -> dict[str, Any]:
    acct: dict[str, Any] = doc["accounts"][0]
    return acct


def managed_policy(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in account(doc)["managed_policies"] if p["name"] == name)


def write_atomically(path: Path, text: str) -> None:
    """Write a temp file next to ``path`` and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def dump_world(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    ca_path: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[bytes, bytes]]  # name -> (key PEM, certificate PEM)

    def channel_credentials(self, client: str | None) -> grpc.ChannelCredentials:
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=self.ca_pem)
        key, cert = self.clients[client]
        return grpc.ssl_channel_credentials(self.ca_pem, key, cert)


def make_pki(directory: Path, clients: dict[str, list[x509.GeneralName]]) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and client certificates with the
    given subject alternative names (all EC P-256, valid for an hour)."""
    now = dt.datetime.now(dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def key_pem(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def builder(subject: str, public_key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
        )

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iam-sidecar test CA")])
    no_usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
         "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    ca = (
        builder("iam-sidecar test CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **no_usage),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        name: str, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier
    ) -> tuple[bytes, bytes]:
        k = key()
        cert = (
            builder(name, k.public_key())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        return key_pem(k), cert.public_bytes(serialization.Encoding.PEM)

    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    server_key, server_cert = leaf(
        "localhost",
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server-key.pem",
    }
    paths["ca"].write_bytes(ca_pem)
    paths["cert"].write_bytes(server_cert)
    paths["key"].write_bytes(server_key)
    return Pki(
        ca_pem=ca_pem,
        ca_path=paths["ca"],
        server_cert=paths["cert"],
        server_key=paths["key"],
        clients={
            name: leaf(name, sans, ExtendedKeyUsageOID.CLIENT_AUTH)
            for name, sans in clients.items()
        },
    )
