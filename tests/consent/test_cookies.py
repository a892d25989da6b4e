"""Requirement 25: in production (an https PUBLIC_URL, DEBUG off) the session and CSRF cookies are
Secure, HttpOnly, SameSite=Lax and carry the __Host- prefix, and `manage.py check --deploy` has
nothing to say. Each check runs the real settings module in a fresh interpreter with a
production-like environment."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Reads the settings, then renders a page that sets the CSRF cookie and reports its attributes.
PROBE = r"""
import json, django
django.setup()
from django.conf import settings
from django.test import Client
response = Client(HTTP_HOST="mcp.example.com").get("/admin/login/", secure=True)
cookie = response.cookies[settings.CSRF_COOKIE_NAME]
print(json.dumps({
    "settings": {name: getattr(settings, name) for name in [
        "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE", "SESSION_COOKIE_NAME", "CSRF_COOKIE_NAME",
        "SESSION_COOKIE_DOMAIN", "CSRF_COOKIE_DOMAIN", "SESSION_COOKIE_PATH", "CSRF_COOKIE_PATH",
        "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "ISSUER",
    ]},
    "status": response.status_code,
    "csrf_cookie": {"secure": cookie["secure"], "httponly": cookie["httponly"], "samesite": cookie["samesite"],
                    "path": cookie["path"], "domain": cookie["domain"]},
}))
"""


@pytest.fixture(scope="module")
def production_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path_factory.mktemp("home")),
        "DJANGO_SETTINGS_MODULE": "okta_mcp.settings",
        "PUBLIC_URL": "https://mcp.example.com",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "OKTA_ISSUER": "https://acme.okta.com/oauth2/default",
        "OKTA_CLIENT_ID": "0oa-production-client",
        "OKTA_CLIENT_SECRET": secrets.token_urlsafe(32),
        "OKTA_ORG_URL": "https://acme.okta.com",
        "OKTA_API_TOKEN": "00" + secrets.token_urlsafe(30),
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('db') / 'prod.sqlite3'}",
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_production_cookies_are_secure_httponly_lax_and_host_prefixed(production_env: dict[str, str]) -> None:
    done = _run(["-c", PROBE], production_env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    s = out["settings"]
    assert s["DEBUG"] is False and s["ISSUER"] == "https://mcp.example.com"
    assert s["SESSION_COOKIE_SECURE"] is True and s["CSRF_COOKIE_SECURE"] is True
    assert s["SESSION_COOKIE_HTTPONLY"] is True and s["CSRF_COOKIE_HTTPONLY"] is True
    assert s["SESSION_COOKIE_SAMESITE"] == "Lax" and s["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert s["SESSION_COOKIE_NAME"].startswith("__Host-") and s["CSRF_COOKIE_NAME"].startswith("__Host-")
    # __Host- cookies are dropped by browsers unless Secure, Path=/ and without Domain.
    assert s["SESSION_COOKIE_DOMAIN"] is None and s["CSRF_COOKIE_DOMAIN"] is None
    assert s["SESSION_COOKIE_PATH"] == "/" and s["CSRF_COOKIE_PATH"] == "/"
    assert s["SECURE_SSL_REDIRECT"] is True and s["SECURE_HSTS_SECONDS"] >= 31536000
    # And what a real response sets.
    assert out["status"] == 200
    assert out["csrf_cookie"] == {"secure": True, "httponly": True, "samesite": "Lax", "path": "/", "domain": ""}


def test_deploy_check_is_clean(production_env: dict[str, str]) -> None:
    done = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr
    assert "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr


def test_production_refuses_plain_http_public_url(production_env: dict[str, str]) -> None:
    done = _run(["manage.py", "check"], {**production_env, "PUBLIC_URL": "http://mcp.example.com"})
    assert done.returncode != 0
    assert "PUBLIC_URL must use https" in done.stderr and "Traceback" not in done.stderr
