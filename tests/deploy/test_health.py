"""/healthz (the process answers) and /readyz (the database answers and every migration is
applied): unauthenticated, uncached, and honest when the database is not there."""

from __future__ import annotations

import os
import sys

import httpx2 as httpx
import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from okta_mcp import views
from tests.conftest import _start, _stop
from tests.deploy.conftest import free_port, wait_ready


@pytest.mark.django_db(transaction=True)
def test_health_endpoints_on_the_running_server(server_url: str) -> None:
    health = httpx.get(server_url + "/healthz", timeout=10)
    ready = httpx.get(server_url + "/readyz", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    for response in (health, ready):
        assert "no-store" in response.headers["cache-control"]
        assert len(response.headers["x-request-id"]) == 32


@pytest.mark.django_db
def test_readyz_reports_pending_migrations(client, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh process: nothing known yet about the migrations.
    monkeypatch.setattr(views, "_migrations_applied", False)
    recorder = MigrationRecorder(connection)
    last = recorder.migration_qs.filter(app="audit").order_by("-id").first()
    assert last is not None
    last.delete()  # rolled back with the test's transaction

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "migrations": "pending"}
    assert views._migrations_applied is False

    recorder.record_applied("audit", last.name)
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})
    # From now on this process only pings the database.
    assert views._migrations_applied is True
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_while_the_database_is_unreachable() -> None:
    """A replica started against a database that is not there stays alive but not ready."""
    port, dead_db_port = free_port(), free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("OKTA_", "DJANGO_", "MCP_", "METRICS_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "okta_mcp.settings",
            "SECRET_KEY": "unreachable-db-test-0123456789abcdefghijklmnopqrstuvwxyz",
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "DATABASE_URL": f"postgres://nobody@127.0.0.1:{dead_db_port}/nothing",
            "OKTA_ISSUER": "http://127.0.0.1:9/oauth2/default",
            "OKTA_CLIENT_ID": "unused",
            "OKTA_CLIENT_SECRET": "unused",
            "OKTA_ORG_URL": "http://127.0.0.1:9",
            "OKTA_API_TOKEN": "unused",
        }
    )
    proc = _start("replica-without-db", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "okta_mcp.asgi:application"], env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", [proc])
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "database": "unreachable"}
        # Nothing about the failure leaks to the caller.
        assert "nobody" not in ready.text and "Traceback" not in ready.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        _stop(proc)
