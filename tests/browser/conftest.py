"""A real browser for the pages people use: Python Playwright driving Debian's Chromium
(/usr/bin/chromium; never a browser that Playwright downloads). Screenshots land in
test-artifacts/screenshots/ for reviewers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections

from tests.clients import USERS
from tests.conformance.conftest import missing_tool

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("OKTA_MCP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
T = TypeVar("T")


@pytest.fixture
def page() -> Iterator[Any]:
    """Chromium with a fresh profile, one per test.

    Playwright's sync API keeps an asyncio loop running on the test's thread while it is open, and
    Django refuses ORM calls from a thread with a running loop. So the browser lives only for the
    test's body (it is set up after, and torn down before, pytest-django's database fixtures), and
    the test reads or writes the database in between through `orm()`, which uses another thread."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_tool("Python Playwright is not installed (pip install playwright; no `playwright install` needed)")
    if not CHROMIUM.exists():
        missing_tool(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="UTC")
        context.set_default_timeout(20_000)
        yield context.new_page()
        context.close()
        browser.close()


def orm(fn: Callable[[], T]) -> T:
    """Run database code while the browser is open (see `page`)."""

    def call() -> T:
        try:
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class LoopbackSite:
    """A tiny web server on loopback: the MCP client's redirect listener (it records every request
    it gets) and the home of pages that try to frame ours."""

    pages: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def serve(self) -> ThreadingHTTPServer:
        pages, requests = self.pages, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                path = self.path.split("?")[0]
                body = pages.get(
                    path,
                    "<!doctype html><title>Client</title><p>Connected. You can close this window.</p>"
                    if path == "/callback"
                    else None,
                )
                status = 200 if body is not None else 404
                data = (body or "not found").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def loopback_site() -> Iterator[LoopbackSite]:
    site = LoopbackSite()
    server = site.serve()
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture
def loopback_client(db: None, loopback_site: LoopbackSite) -> Any:
    """A public client (PKCE, no secret) whose redirect URI is the loopback listener."""
    from oauth2_provider.models import Application

    return orm(
        lambda: Application.objects.create(
            name="VS Code",
            client_id="vscode-browser-test",
            client_type=Application.CLIENT_PUBLIC,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=f"{loopback_site.url}/callback",
            algorithm="",
        )
    )


def sign_in_at_idp(page: Any, user: str) -> None:
    """The sandbox IdP's login form (it stands in for Okta's)."""
    login, password = USERS[user]
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit]")


def serve_static_files(page: Any, server_url: str) -> None:
    """Static files (the admin's CSS and JS) as the production front end serves them: nginx answers
    /static/ from `collectstatic`'s output (deploy/nginx.conf) and the app server never does. The
    browser gets them here from the same finders that feed `collectstatic`."""
    import mimetypes

    from django.contrib.staticfiles import finders

    prefix = f"{server_url}/static/"

    def fulfil(route: Any) -> None:
        relative = route.request.url[len(prefix) :].split("?")[0]
        found = finders.find(relative) if ".." not in relative else None
        if not found:
            route.fulfill(status=404, body="not found")
            return
        content_type = mimetypes.guess_type(found)[0] or "application/octet-stream"
        route.fulfill(status=200, body=Path(found).read_bytes(), content_type=content_type)

    page.route(f"{prefix}**", fulfil)
