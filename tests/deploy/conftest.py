"""The production shape on loopback: two daphne replicas of this project, under the production
settings module, sharing the test database (PostgreSQL) and Redis, behind Debian's nginx running
deploy/nginx.conf with TLS (a self-signed certificate made here). A sandbox IdP of its own sends
users back to the https callback behind the proxy.

Where nginx, PostgreSQL or Redis is missing the tests that need them are skipped; under CI=true they
fail instead, so CI cannot silently stop testing the replicas."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LOG_DIR, ROOT, _server_database_url, _start, _stop

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
REPLICAS = 2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nginx: needs Debian's nginx, PostgreSQL and Redis (run in CI)")


def require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test: {why}")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """What a client trusting only this certificate uses."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(directory: Path) -> Tls:
    """A self-signed certificate for 127.0.0.1 (P-256, one day)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "okta-mcp test proxy")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    tls = Tls(cert=directory / "proxy.crt", key=directory / "proxy.key")
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    tls.key.chmod(0o600)
    return tls


def render_site(template: Path, values: dict[str, str]) -> str:
    """deploy/nginx.conf with its @NAME@ placeholders filled; comment lines are dropped (they
    mention the placeholders)."""
    lines = [line for line in template.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines) + "\n"
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    assert "@" not in text.replace("$", ""), "unfilled placeholder in deploy/nginx.conf"
    return text


def main_config(directory: Path, site: Path) -> str:
    """A minimal nginx.conf around the site, with everything under `directory`. One worker, so the
    round robin is exact and the test can expect strict alternation."""
    return f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {LOG_DIR}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], verify: ssl.SSLContext | bool = True, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}; see {LOG_DIR}")
        try:
            if httpx.get(url, timeout=1.0, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready; see {LOG_DIR}")


@dataclass
class Deployment:
    public_url: str
    replica_urls: list[str]
    upstreams: list[str]
    tls: Tls
    access_log: Path
    replica_logs: list[Path]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return self.tls.client_context()

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.public_url, verify=self.ssl_context, timeout=30, follow_redirects=False)

    def log_mark(self) -> int:
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def log_since(self, mark: int, expected: int = 0) -> list[dict]:
        """The proxy's access-log entries written after `mark`, waiting (up to 5 s) for `expected`
        of them: nginx writes a request's line after its response is done, which the client may
        see first."""
        deadline = time.monotonic() + 5
        while True:
            with self.access_log.open("rb") as f:
                f.seek(mark)
                entries = [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]
            if len(entries) >= expected or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)

    def json_log_lines(self, request_id: str) -> list[dict]:
        """The replicas' JSON log lines carrying `request_id`."""
        found = []
        for path in self.replica_logs:
            for line in path.read_text().splitlines():
                if request_id in line and line.startswith("{"):
                    found.append({**json.loads(line), "replica_log": path.name})
        return found

    def scrape(self, replica: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """One replica's /metrics, scraped directly (loopback is in the default allowlist)."""
        response = httpx.get(self.replica_urls[replica] + "/metrics", timeout=10)
        response.raise_for_status()
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def deployment(django_db_setup: None, django_db_blocker: object, okta_api_url: str) -> Iterator[Deployment]:
    require(NGINX is not None, "nginx is not installed (apt-get install nginx)")
    require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "the replicas share PostgreSQL: run with DATABASE_URL=postgres://... (make test-pg)",
    )
    require(bool(settings.REDIS_URL), "the replicas share Redis: run with REDIS_URL set (make test-pg)")

    # Not under pytest's private temp root: nginx's workers (user nobody) read the static files here.
    directory = Path(tempfile.mkdtemp(prefix="okta-mcp-deploy-"))
    directory.chmod(0o755)
    tls = make_certificate(directory)
    proxy_port, idp_port = free_port(), free_port()
    replica_ports = [free_port() for _ in range(REPLICAS)]
    public_url = f"https://127.0.0.1:{proxy_port}"
    static_root = directory / "static"
    access_log = LOG_DIR / "nginx-access.log"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []

    # An IdP of its own: the login callback is the https one behind the proxy.
    issuer = f"http://127.0.0.1:{idp_port}/oauth2/default"
    idp_env = {
        **os.environ,
        "IDP_PORT": str(idp_port),
        "IDP_CLIENT_ID": settings.OIDC_RP_CLIENT_ID,
        "IDP_CLIENT_SECRET": settings.OIDC_RP_CLIENT_SECRET,
        "IDP_REDIRECT_URIS": public_url + "/oidc/callback/",
        "OKTA_API_URL": okta_api_url,
        "OKTA_API_TOKEN": settings.OKTA_API_TOKEN,
    }
    try:
        processes.append(_start("idp-behind-proxy", ["node", "server.mjs"], idp_env, cwd=ROOT / "sandbox" / "idp"))

        # The production settings module, configured only through the environment.
        server_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OKTA_", "DJANGO_", "MCP_", "METRICS_"))
        }
        server_env.update(
            {
                "DJANGO_SETTINGS_MODULE": "okta_mcp.settings",
                "SECRET_KEY": settings.SECRET_KEY,
                "PUBLIC_URL": public_url,
                "BEHIND_TLS_PROXY": "true",
                "MCP_LEGACY_SESSIONS": "stateless",
                "DATABASE_URL": _server_database_url(),
                "REDIS_URL": settings.REDIS_URL,
                "OKTA_ISSUER": issuer,
                "OKTA_CLIENT_ID": settings.OIDC_RP_CLIENT_ID,
                "OKTA_CLIENT_SECRET": settings.OIDC_RP_CLIENT_SECRET,
                "OKTA_ORG_URL": okta_api_url,
                "OKTA_API_TOKEN": settings.OKTA_API_TOKEN,
                "OKTA_GROUPS_CACHE_SECONDS": "0",
                "OKTA_REQUEST_TIMEOUT_SECONDS": "5",
                "STATIC_ROOT": str(static_root),
                "LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=server_env, check=True
        )
        for i, port in enumerate(replica_ports, start=1):
            processes.append(
                _start(
                    f"replica-{i}",
                    [
                        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "--proxy-headers",
                        "okta_mcp.asgi:application",
                    ],
                    server_env,
                )
            )

        site = directory / "okta-mcp.conf"
        site.write_text(
            render_site(
                ROOT / "deploy" / "nginx.conf",
                {
                    "SERVER_NAME": "127.0.0.1",
                    "LISTEN": f"127.0.0.1:{proxy_port}",
                    "CERTIFICATE": str(tls.cert),
                    "CERTIFICATE_KEY": str(tls.key),
                    "UPSTREAM_SERVERS": " ".join(f"server 127.0.0.1:{p};" for p in replica_ports),
                    "STATIC_ROOT": str(static_root),
                    "ACCESS_LOG": str(access_log),
                },
            )
        )
        config = directory / "nginx.conf"
        config.write_text(main_config(directory, site))
        processes.append(_start("nginx", [NGINX, "-c", str(config), "-p", str(directory), "-e", str(LOG_DIR / "nginx-error.log")], dict(os.environ)))

        replica_urls = [f"http://127.0.0.1:{p}" for p in replica_ports]
        for url in replica_urls:
            wait_ready(url + "/healthz", processes)
        wait_ready(f"http://127.0.0.1:{idp_port}/__health", processes)
        wait_ready(public_url + "/healthz", processes, verify=tls.client_context())
        yield Deployment(
            public_url=public_url,
            replica_urls=replica_urls,
            upstreams=[f"127.0.0.1:{p}" for p in replica_ports],
            tls=tls,
            access_log=access_log,
            replica_logs=[LOG_DIR / f"replica-{i}.log" for i in range(1, REPLICAS + 1)],
            processes=processes,
        )
    finally:
        for proc in reversed(processes):
            _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)
