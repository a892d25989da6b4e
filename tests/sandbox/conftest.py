"""Fixtures for the sandbox Okta API's own tests: the stand-in on a free loopback port and, in
front of it, Stoplight Prism validating every response against Okta's published contract.

Names start with `okta_api_` / `prism_` so they don't collide with the project's fixtures.
These tests need no Django: run them with `pytest tests/sandbox -p no:django`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PRISM_DIR = ROOT / "sandbox" / "okta_api" / "prism"
PRISM_JS = PRISM_DIR / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
API_TOKEN = "sandbox-api-token"
AUTH = {"Authorization": f"SSWS {API_TOKEN}", "Accept": "application/json"}

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.okta_api.recordings import default_reference_dir  # noqa: E402

REFERENCE_DIR = default_reference_dir()
CONTRACT = REFERENCE_DIR / "management-api.prism.yaml"


def okta_api_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(ready: Any, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready after {timeout}s:\n{log.read_text(errors='replace')[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class OktaApiServer:
    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def control(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """Call the test-only control API (`/__sandbox/...`)."""
        response = httpx.request(method, self.base_url + path, json=json, timeout=30)
        response.raise_for_status()
        return response

    def reset(self, extra_users: int = 0) -> None:
        self.control("POST", "/__sandbox/reset", {"extra_users": extra_users})


@pytest.fixture(scope="session")
def okta_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OktaApiServer]:
    """`python -m sandbox.okta_api` on a free port, exactly as `make demo` starts it."""
    port = okta_api_free_port()
    log = tmp_path_factory.mktemp("okta_api") / "okta_api.log"
    env = {**os.environ, "OKTA_API_TOKEN": API_TOKEN, "OKTA_REFERENCE_DIR": str(REFERENCE_DIR)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.okta_api", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = OktaApiServer(f"http://127.0.0.1:{port}", API_TOKEN, proc, log)
    try:
        _wait_until(lambda: httpx.get(server.base_url + "/__health", timeout=1).status_code == 200,
                    proc, "sandbox Okta API", log, timeout=60)
        yield server
    finally:
        _stop(proc)


@pytest.fixture()
def okta_api_fresh(okta_api_server: OktaApiServer) -> Iterator[OktaApiServer]:
    """The stand-in reset to its seed (4 org users, no faults, no latency, empty request log)."""
    okta_api_server.reset(extra_users=0)
    yield okta_api_server
    okta_api_server.reset(extra_users=0)


@pytest.fixture()
def okta_api_client(okta_api_fresh: OktaApiServer) -> Iterator[httpx.Client]:
    """An SSWS-authenticated client talking to the stand-in directly."""
    with httpx.Client(base_url=okta_api_fresh.base_url, headers=AUTH, timeout=30) as client:
        yield client


def _prism_available() -> str | None:
    """Install the pinned Prism from the lock file if needed; the reason it can't run, if any."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not PRISM_JS.exists():
        if shutil.which("npm") is None:
            return "Prism is not installed and npm is missing"
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PRISM_DIR,
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not PRISM_JS.exists():
            return f"npm ci failed in {PRISM_DIR}: {result.stderr[-2000:]}"
    if not CONTRACT.exists():
        return f"Okta's contract is missing: {CONTRACT}"
    return None


@pytest.fixture(scope="session")
def prism_url(okta_api_server: OktaApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prism in proxy mode with --errors in front of the stand-in: every response that breaks
    Okta's contract comes back as a 500 listing the violations."""
    reason = _prism_available()
    if reason:
        pytest.skip(reason)
    port = okta_api_free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    with log.open("wb") as out:
        # node runs the CLI directly (no npx wrapper), so terminating this process stops Prism.
        proc = subprocess.Popen(
            ["node", str(PRISM_JS), "proxy", str(CONTRACT), okta_api_server.base_url,
             "--errors", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PRISM_DIR, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: httpx.get(url + "/api/v1/groups", headers=AUTH, timeout=5).status_code == 200,
                    proc, "Prism", log, timeout=180)
        yield url
    finally:
        _stop(proc)


@pytest.fixture()
def prism_client(prism_url: str, okta_api_fresh: OktaApiServer) -> Iterator[httpx.Client]:
    """An SSWS-authenticated client whose requests go through Prism to a freshly reset stand-in."""
    with httpx.Client(base_url=prism_url, headers=AUTH, timeout=60) as client:
        yield client


@pytest.fixture()
def okta_api_sdk_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the okta SDK from reading a stray ~/.okta/okta.yaml, ./okta.yaml or OKTA_* variables;
    allow the plain-http org URL (the SDK only checks that this variable is non-empty)."""
    for name in list(os.environ):
        if name.startswith("OKTA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
