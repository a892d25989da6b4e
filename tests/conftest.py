"""Fixtures that run the real thing on loopback: the sandbox Okta API, the sandbox OpenID provider
standing in for Okta's login, and this server under daphne, sharing the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from django.conf import settings

from tests import settings as test_settings

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = Path(os.environ.get("OKTA_MCP_TEST_LOGS", ROOT / "test-artifacts" / "logs"))


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {LOG_DIR}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not become ready at {url}")


def _start(name: str, cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session", autouse=True)
def _audit_writer_connection_closed(django_db_setup: None) -> Iterator[None]:
    """Tests that append through audit.writer leave its thread holding a connection to the test
    database, which could then not be dropped."""
    yield
    from audit.writer import audit_writer_close_connection

    audit_writer_close_connection()


@pytest.fixture(scope="session")
def okta_api_url() -> Iterator[str]:
    """The sandbox Okta Management API (stateful, seeded from Okta's recorded responses)."""
    url = f"http://127.0.0.1:{test_settings.OKTA_API_PORT}"
    proc = _start(
        "okta-api",
        [sys.executable, "-m", "sandbox.okta_api", "--port", str(test_settings.OKTA_API_PORT)],
        {**os.environ, "OKTA_API_TOKEN": settings.OKTA_API_TOKEN},
    )
    _wait_http(url + "/__health", proc, "sandbox Okta API")
    yield url
    _stop(proc)


@pytest.fixture(scope="session")
def idp_url(okta_api_url: str) -> Iterator[str]:
    """The sandbox OpenID provider standing in for Okta's login (npm oidc-provider)."""
    env = {
        **os.environ,
        "IDP_PORT": str(test_settings.IDP_PORT),
        "IDP_CLIENT_ID": settings.OIDC_RP_CLIENT_ID,
        "IDP_CLIENT_SECRET": settings.OIDC_RP_CLIENT_SECRET,
        "IDP_REDIRECT_URIS": settings.PUBLIC_URL + "/oidc/callback/",
        "OKTA_API_URL": okta_api_url,
        "OKTA_API_TOKEN": settings.OKTA_API_TOKEN,
    }
    proc = _start("idp", ["node", "server.mjs"], env, cwd=ROOT / "sandbox" / "idp")
    _wait_http(f"http://127.0.0.1:{test_settings.IDP_PORT}/__health", proc, "sandbox IdP")
    yield settings.OKTA_ISSUER
    _stop(proc)


def _server_database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return "sqlite:///" + str(db["NAME"])
    user = db.get("USER", "")
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def server_url(django_db_setup: None, django_db_blocker: object, idp_url: str, okta_api_url: str) -> Iterator[str]:
    """This project under daphne on loopback, using the test database the suite just created."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _server_database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    proc = _start(
        "daphne",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(test_settings.SERVER_PORT), "okta_mcp.asgi:application"],
        env,
    )
    _wait_http(settings.PUBLIC_URL + "/healthz", proc, "daphne")
    yield settings.PUBLIC_URL
    _stop(proc)


@pytest.fixture
def okta_org(okta_api_url: str) -> Iterator[str]:
    """A freshly seeded sandbox org for each test (the sandbox API and the IdP share its state)."""
    httpx.post(okta_api_url + "/__sandbox/reset", timeout=10).raise_for_status()
    httpx.delete(okta_api_url + "/__sandbox/faults", timeout=10)
    yield okta_api_url
    httpx.delete(okta_api_url + "/__sandbox/faults", timeout=10)


@pytest.fixture
def public_client(db: None) -> object:
    """A static public client registration (PKCE, no secret) with a loopback redirect."""
    from oauth2_provider.models import Application

    from tests.clients import LOOPBACK_REDIRECT

    return Application.objects.create(
        name="Test MCP client",
        client_id="test-mcp-client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=LOOPBACK_REDIRECT,
        skip_authorization=False,
        algorithm="",
    )


@pytest.fixture
def demo_policy(db: None) -> None:
    """The demo roles: Helpdesk reads, Identity Admins get every tool, Contractors nothing."""
    from tools.services import policy_seed_demo

    policy_seed_demo()
