"""/metrics: who may read it, what it counts, and the request ids and JSON log lines that go with
it. The replica test (test_replicas.py) checks the token, tool-call and Okta counters of a whole
session across two processes."""

from __future__ import annotations

import ipaddress
import json
import logging
import time

import anyio
import httpx2 as httpx
import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from okta_mcp import metrics
from okta_mcp.observability import JsonFormatter, request_id_reset, request_id_set
from tests.deploy.conftest import sample
from tools.okta import okta_call

SECRET = "metrics-scraper-secret-0123456789abcdef"


def _scrape(url: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url + "/metrics", timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.mark.django_db
def test_metrics_are_served_to_loopback_only_by_default(client) -> None:
    allowed = client.get("/metrics")
    assert allowed.status_code == 200
    assert allowed["Content-Type"].startswith("text/plain")
    assert b"okta_mcp_http_requests_total" in allowed.content
    assert "no-store" in allowed["Cache-Control"]

    for refused in (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3"),
        # Proxied (or pretending to be): the peer address is not the scraper's, only the secret counts.
        client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1"),
        client.get("/metrics", HTTP_X_FORWARDED_PROTO="https"),
    ):
        assert refused.status_code == 403
        assert refused.json() == {"error": "forbidden"}
        assert b"okta_mcp" not in refused.content


@pytest.mark.django_db
def test_metrics_bearer_secret_and_network_list(client) -> None:
    with override_settings(METRICS_BEARER_TOKEN=SECRET, METRICS_NETWORKS=[]):
        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {SECRET}").status_code == 200
        assert client.get("/metrics", HTTP_X_FORWARDED_FOR="1.2.3.4", HTTP_AUTHORIZATION=f"Bearer {SECRET}").status_code == 200
        # A wrong or missing secret, or the secret in the query string, is refused even from loopback
        # (the network list is empty here).
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SECRET}x").status_code == 403
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {SECRET}").status_code == 403
        assert client.get("/metrics").status_code == 403
        assert client.get(f"/metrics?token={SECRET}").status_code == 403

    with override_settings(METRICS_NETWORKS=[ipaddress.ip_network("10.0.0.0/8")]):
        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
        assert client.get("/metrics").status_code == 403  # 127.0.0.1 is not in 10/8


@pytest.mark.django_db(transaction=True)
def test_refusals_at_mcp_are_counted_by_reason(server_url: str) -> None:
    before = _scrape(server_url)
    no_token = httpx.post(server_url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
    bad_token = httpx.post(
        server_url + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": "Bearer not-a-token-we-issued"},
        timeout=10,
    )
    after = _scrape(server_url)
    assert no_token.status_code == bad_token.status_code == 401

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("okta_mcp_authorization_denials_total", stage="mcp", reason="no_bearer_token") == 1
    assert delta("okta_mcp_authorization_denials_total", stage="mcp", reason="unknown_token") == 1
    assert delta("okta_mcp_http_requests_total", endpoint="mcp", method="POST", status="401") == 2
    assert delta("okta_mcp_http_request_duration_seconds_count", endpoint="mcp") == 2
    # The scrape before this one is counted too: the Django side goes through the same middleware.
    assert delta("okta_mcp_http_requests_total", endpoint="metrics", method="GET", status="200") == 1
    # The token presented never appears in the exposition.
    assert "not-a-token" not in httpx.get(server_url + "/metrics", timeout=10).text


@pytest.mark.django_db(transaction=True)
def test_request_ids_are_echoed_or_replaced(server_url: str) -> None:
    mine = "req-0123456789abcdef"
    for path, method in (("/mcp", "POST"), ("/healthz", "GET")):
        echoed = httpx.request(method, server_url + path, headers={"X-Request-Id": mine}, timeout=10)
        assert echoed.headers["x-request-id"] == mine
        # Anything but a plain token (here: spaces and a quote) is replaced by a fresh id.
        replaced = httpx.request(method, server_url + path, headers={"X-Request-Id": 'a b" c'}, timeout=10)
        assert len(replaced.headers["x-request-id"]) == 32 and replaced.headers["x-request-id"].isalnum()
        fresh = httpx.request(method, server_url + path, timeout=10)
        assert fresh.headers["x-request-id"] not in (mine, replaced.headers["x-request-id"])


def test_okta_latency_and_rate_limit_waits_are_counted(okta_org: str) -> None:
    """The real okta SDK against the sandbox answering 429 once: okta_call waits for the reset
    and retries, and both the wait and each call's latency land in this process's metrics."""
    waited_before = REGISTRY.get_sample_value("okta_mcp_okta_rate_limit_waits_total", {"action": "waited"}) or 0
    seconds_before = REGISTRY.get_sample_value("okta_mcp_okta_rate_limit_wait_seconds_total") or 0
    limited_before = (
        REGISTRY.get_sample_value("okta_mcp_okta_call_duration_seconds_count", {"operation": "get_user", "result": "http_429"})
        or 0
    )
    ok_before = (
        REGISTRY.get_sample_value("okta_mcp_okta_call_duration_seconds_count", {"operation": "get_user", "result": "ok"})
        or 0
    )
    httpx.post(
        okta_org + "/__sandbox/faults",
        json={"path_prefix": "/api/v1/users", "status": 429, "retry_after_seconds": 2, "count": 1},
        timeout=10,
    ).raise_for_status()
    started = time.monotonic()
    user, _ = anyio.run(lambda: okta_call("get_user", "bob@acme.example"))
    assert user.profile.login == "bob@acme.example"
    elapsed = time.monotonic() - started
    waited = (REGISTRY.get_sample_value("okta_mcp_okta_rate_limit_wait_seconds_total") or 0) - seconds_before
    # X-Rate-Limit-Reset is the whole second 2 s ahead: the wait is about 1 to 2 s and really happened.
    assert 0.9 < waited <= 2.0 and elapsed >= waited
    assert REGISTRY.get_sample_value("okta_mcp_okta_rate_limit_waits_total", {"action": "waited"}) == waited_before + 1
    assert (
        REGISTRY.get_sample_value("okta_mcp_okta_call_duration_seconds_count", {"operation": "get_user", "result": "http_429"})
        == limited_before + 1
    )
    assert (
        REGISTRY.get_sample_value("okta_mcp_okta_call_duration_seconds_count", {"operation": "get_user", "result": "ok"})
        == ok_before + 1
    )


def test_label_values_are_capped() -> None:
    """Label values never come from request data, and each label holds at most MAX_LABEL_VALUES."""
    label = "test_cap"
    values = [metrics.bounded(label, f"value {i}") for i in range(metrics.MAX_LABEL_VALUES + 5)]
    assert values[0] == "value_0"
    assert len(set(values)) == metrics.MAX_LABEL_VALUES + 1
    assert values[-5:] == [metrics.OTHER] * 5
    assert metrics.bounded(label, "value 3") == "value_3"  # known values keep their label


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("okta_mcp.test", logging.WARNING, __file__, 1, 'said "%s"', ("hi",), None)
    token = request_id_set("req-log-0001")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id_reset(token)
    parsed = json.loads(line)
    assert parsed["message"] == 'said "hi"'
    assert parsed["request_id"] == "req-log-0001"
    assert parsed["level"] == "WARNING" and parsed["logger"] == "okta_mcp.test"
    assert "\n" not in line
    # Outside a request there is no id to report.
    assert "request_id" not in json.loads(JsonFormatter().format(record))
