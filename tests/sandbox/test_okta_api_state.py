"""The stand-in's own rules: seeding, paging, lifecycle transitions, filters and the test harness
(faults, latency, request log). Run against the real server process, plus a few pure unit tests."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx2 as httpx
import pytest

from sandbox.okta_api import expressions as ex
from sandbox.okta_api.__main__ import parse_args
from sandbox.okta_api.control import Harness, parse_fault
from sandbox.okta_api.recordings import ORIGIN_PLACEHOLDER
from sandbox.okta_api.routes import USER_FILTER, USER_SEARCH
from sandbox.okta_api.seed import SeedOptions, build_state

from .conftest import AUTH, OktaApiServer

ORG = json.loads((Path(__file__).resolve().parents[2] / "sandbox" / "org.json").read_text())
ALICE, BOB, CAROL, JANE = (user["id"] for user in ORG["users"])
HELPDESK = "00g1helpdesk000000001"


def _next_link(response: httpx.Response) -> str | None:
    for link in response.headers.get_list("link"):
        if 'rel="next"' in link:
            return link.split(">")[0].lstrip("<")
    return None


# --------------------------------------------------------------------------- seed
def test_org_file_is_seeded_exactly() -> None:
    state = build_state(SeedOptions())
    assert set(state.users) == {user["id"] for user in ORG["users"]}
    assert set(state.groups) == {group["id"] for group in ORG["groups"]}
    names = {group["name"]: group["id"] for group in ORG["groups"]}
    for spec in ORG["users"]:
        user = state.users[spec["id"]]
        assert user["status"] == spec["status"]
        assert {k: user["profile"][k] for k in ("login", "email", "firstName", "lastName")} == {
            k: spec[k] for k in ("login", "email", "firstName", "lastName")
        }
        assert set(state.user_group_ids(spec["id"])) == {names[name] for name in spec["groups"]}
    for spec in ORG["groups"]:
        assert state.groups[spec["id"]]["type"] == spec["type"]
        assert state.groups[spec["id"]]["profile"]["name"] == spec["name"]
    assert state.principal_user_id == ALICE


def test_recorded_families_are_enriched_and_rehomed() -> None:
    state = build_state(SeedOptions())
    assert len(state.apps) >= 5 and len(state.policies) >= 3
    assert sum(len(rules) for rules in state.policy_rules.values()) >= 2
    for family, items in state.catalog.items():
        assert items, family
    text = json.dumps([state.apps, state.policies, state.policy_rules, state.catalog, state.factors])
    assert "test.okta.com" not in text and "-admin.okta.com" not in text  # org URLs became the placeholder
    assert ORIGIN_PLACEHOLDER in text
    # foreign users and groups are remapped onto the org's own
    assert all(uid in state.users for uid in re.findall(r"(?<![A-Za-z0-9])00u[A-Za-z0-9]{17}(?![A-Za-z0-9])", text))


def test_extra_users_are_synthetic_and_deterministic() -> None:
    state = build_state(SeedOptions(extra_users=3))
    extra = sorted(set(state.users) - {user["id"] for user in ORG["users"]})
    assert extra == ["00u00000000000000001", "00u00000000000000002", "00u00000000000000003"]
    assert all(state.users[uid]["status"] == "ACTIVE" for uid in extra)
    assert state.users[extra[0]]["profile"]["login"] == "user00001@acme.example"
    assert parse_args(["--extra-users", "10000"]).extra_users == 10000


# --------------------------------------------------------------------------- expressions
@pytest.mark.parametrize(
    "text",
    [
        "",
        "status",
        "status eq",
        'status eq "ACTIVE" and',
        'status eq "ACTIVE" or or status eq "X"',
        '(status eq "ACTIVE"',
        'status eq "ACTIVE")',
        'status xx "ACTIVE"',
        'status eq "unterminated',
        "__import__('os').system('id')",
        'status eq "ACTIVE"; drop table users',
        'nickName eq "x"',
        'profile.login eq profile.email',
        "(" * 20 + 'status eq "ACTIVE"' + ")" * 20,
        " or ".join(['status eq "ACTIVE"'] * 40),
        'status eq "' + "a" * 3000 + '"',
    ],
)
def test_search_parser_rejects_junk(text: str) -> None:
    with pytest.raises(ex.ExpressionError):
        ex.parse(text, USER_SEARCH)


def test_filter_grammar_is_narrower_than_search() -> None:
    ex.parse('profile.department eq "Sales"', USER_SEARCH)
    with pytest.raises(ex.ExpressionError):
        ex.parse('profile.department eq "Sales"', USER_FILTER)
    with pytest.raises(ex.ExpressionError):
        ex.parse('profile.login sw "a"', USER_FILTER)


def test_expression_semantics() -> None:
    user = {"status": "ACTIVE", "created": "2024-03-05T16:20:00.000Z",
            "profile": {"login": "Alice@acme.example", "lastName": "Admin", "tags": ["a", "b"]}}

    def matches(text: str) -> bool:
        return ex.evaluate(ex.parse(text, USER_SEARCH), lambda attribute: ex.dotted(user, attribute))

    assert matches('profile.login eq "alice@ACME.example"')  # case-insensitive, like Okta
    assert matches('profile.login sw "ali" and status eq "ACTIVE"')
    assert matches('status eq "SUSPENDED" or profile.lastName co "dm"')
    assert not matches('status eq "SUSPENDED" or status eq "STAGED" and profile.lastName eq "Admin"')
    assert matches('(status eq "SUSPENDED" or status eq "ACTIVE") and profile.lastName eq "Admin"')
    assert matches('created gt "2024-01-01T00:00:00.000Z" and created lt "2025-01-01"')
    assert matches("profile.login pr") and not matches("profile.mobilePhone pr")
    assert matches('profile.tags eq "b"') and matches('status ne "SUSPENDED"')


# --------------------------------------------------------------------------- HTTP: paging and queries
def test_paging_over_extra_users_takes_three_pages(
    okta_api_client: httpx.Client, okta_api_fresh: OktaApiServer
) -> None:
    okta_api_fresh.reset(extra_users=450)
    url: str | None = "/api/v1/users"
    pages: list[list[str]] = []
    while url:
        response = okta_api_client.get(url)
        assert response.status_code == 200
        pages.append([user["id"] for user in response.json()])
        url = _next_link(response)
        if url:
            assert url.startswith(okta_api_fresh.base_url) and "limit=200" in url
    assert [len(page) for page in pages] == [200, 200, 54]
    seen = [uid for page in pages for uid in page]
    assert seen == sorted(seen) and len(set(seen)) == 454
    assert seen[0] == "00u00000000000000001"


def test_limit_is_clamped_and_search_pages(okta_api_client: httpx.Client, okta_api_fresh: OktaApiServer) -> None:
    okta_api_fresh.reset(extra_users=250)
    assert len(okta_api_client.get("/api/v1/users?limit=5000").json()) == 200
    first = okta_api_client.get("/api/v1/users", params={"search": 'profile.login sw "user001"', "limit": 4})
    assert [u["profile"]["login"] for u in first.json()] == [f"user001{n:02d}@acme.example" for n in range(4)]
    second = okta_api_client.get(_next_link(first))  # the next link keeps the search
    assert second.json()[0]["profile"]["login"] == "user00104@acme.example"


def test_queries_on_users(okta_api_client: httpx.Client) -> None:
    def ids(**params: str) -> list[str]:
        response = okta_api_client.get("/api/v1/users", params=params)
        assert response.status_code == 200, response.text
        return [user["id"] for user in response.json()]

    assert ids(q="Jan") == [JANE] and ids(q="bob@") == [BOB] and ids(q="contractor") == [CAROL]
    assert ids(filter='status eq "LOCKED_OUT"') == [JANE]
    assert ids(filter='profile.email eq "carol@acme.example"') == [CAROL]
    assert ids(search='profile.firstName eq "alice" or profile.lastName sw "Help"') == [ALICE, BOB]
    assert okta_api_client.get("/api/v1/users/JANE.DOE@acme.example").json()["id"] == JANE


def test_deprovisioned_users_leave_the_plain_listing(okta_api_client: httpx.Client) -> None:
    assert okta_api_client.post(f"/api/v1/users/{CAROL}/lifecycle/deactivate").status_code == 200
    listed = [u["id"] for u in okta_api_client.get("/api/v1/users").json()]
    assert CAROL not in listed
    found = okta_api_client.get("/api/v1/users", params={"search": 'status eq "DEPROVISIONED"'}).json()
    assert [u["id"] for u in found] == [CAROL]
    filtered = okta_api_client.get("/api/v1/users", params={"filter": 'status eq "DEPROVISIONED"'}).json()
    assert [u["id"] for u in filtered] == [CAROL]


def test_bad_expressions_are_400s(okta_api_client: httpx.Client) -> None:
    search = okta_api_client.get("/api/v1/users", params={"search": 'profile.login eq "x" and'})
    assert search.status_code == 400 and search.json()["errorCode"] == "E0000031"
    assert search.json()["errorCauses"][0]["errorSummary"]
    flt = okta_api_client.get("/api/v1/users", params={"filter": 'profile.city eq "Paris"'})
    assert flt.status_code == 400 and flt.json()["errorCode"] == "E0000001"


# --------------------------------------------------------------------------- HTTP: lifecycle
@pytest.mark.parametrize(
    "user, action, status, new_status",
    [
        (ALICE, "suspend", 200, "SUSPENDED"),
        (JANE, "suspend", 400, "LOCKED_OUT"),
        (ALICE, "unsuspend", 400, "ACTIVE"),
        (JANE, "unlock", 200, "ACTIVE"),
        (ALICE, "unlock", 200, "ACTIVE"),  # the contract also allows unlocking ACTIVE users
        (BOB, "deactivate", 200, "DEPROVISIONED"),
        (ALICE, "activate", 403, "ACTIVE"),
        (BOB, "reset_factors", 200, "ACTIVE"),
    ],
)
def test_lifecycle_transitions(
    okta_api_client: httpx.Client, user: str, action: str, status: int, new_status: str
) -> None:
    response = okta_api_client.post(f"/api/v1/users/{user}/lifecycle/{action}")
    assert response.status_code == status, response.text
    if status == 400:
        body = response.json()
        assert body["errorCode"] == "E0000001" and body["errorSummary"].startswith("Api validation failed")
        assert body["errorCauses"]
    assert okta_api_client.get(f"/api/v1/users/{user}").json()["status"] == new_status


def test_lifecycle_round_trip_and_system_log(okta_api_client: httpx.Client) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    for action in ("suspend", "unsuspend", "deactivate", "activate"):
        assert okta_api_client.post(f"/api/v1/users/{BOB}/lifecycle/{action}").status_code == 200
    user = okta_api_client.get(f"/api/v1/users/{BOB}").json()
    assert user["status"] == "ACTIVE" and "suspend" in user["_links"]
    assert okta_api_client.post(f"/api/v1/users/{BOB}/lifecycle/explode").status_code == 404

    events = okta_api_client.get("/api/v1/logs", params={
        "since": before.isoformat(), "filter": f'target.id eq "{BOB}" and actor.id eq "{ALICE}"'}).json()
    assert [e["eventType"] for e in events] == [
        "user.lifecycle.suspend", "user.lifecycle.unsuspend", "user.lifecycle.deactivate", "user.lifecycle.activate"]
    event = events[0]
    assert event["actor"]["alternateId"] == "alice@acme.example" and event["outcome"]["result"] == "SUCCESS"
    assert event["target"][0] == {"id": BOB, "type": "User", "alternateId": "bob@acme.example",
                                  "displayName": "Bob Helpdesk"}
    assert datetime.fromisoformat(event["published"].replace("Z", "+00:00")) >= before


def test_group_membership_changes(okta_api_client: httpx.Client) -> None:
    path = f"/api/v1/groups/{HELPDESK}/users/{CAROL}"
    assert okta_api_client.put(path).status_code == 204
    assert okta_api_client.put(path).status_code == 204  # idempotent, logged once
    assert HELPDESK in [g["id"] for g in okta_api_client.get(f"/api/v1/users/{CAROL}/groups").json()]
    assert okta_api_client.delete(path).status_code == 204
    assert HELPDESK not in [g["id"] for g in okta_api_client.get(f"/api/v1/users/{CAROL}/groups").json()]
    events = okta_api_client.get("/api/v1/logs", params={
        "filter": f'target.id eq "{CAROL}" and target.id eq "{HELPDESK}"', "sortOrder": "DESCENDING"}).json()
    assert [e["eventType"] for e in events] == ["group.user_membership.remove", "group.user_membership.add"]
    missing = okta_api_client.put(f"/api/v1/groups/{HELPDESK}/users/00u0000000000nosuch")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "E0000007"


def test_system_log_paging_and_queries(okta_api_client: httpx.Client) -> None:
    params = {"since": "2000-01-01T00:00:00Z", "limit": 10}
    first = okta_api_client.get("/api/v1/logs", params=params)
    events = first.json()
    assert len(events) == 10 and events == sorted(events, key=lambda e: e["published"])
    rest = okta_api_client.get(_next_link(first)).json()
    assert rest and rest[0]["uuid"] not in {e["uuid"] for e in events}
    newest = okta_api_client.get("/api/v1/logs", params={**params, "sortOrder": "DESCENDING"}).json()
    assert newest == sorted(newest, key=lambda e: e["published"], reverse=True)
    locked = okta_api_client.get("/api/v1/logs", params={"q": "jane lock"}).json()
    assert [e["eventType"] for e in locked] == ["user.account.lock"]
    assert okta_api_client.get("/api/v1/logs", params={"until": "2000-01-01T00:00:00Z"}).json() == []


# --------------------------------------------------------------------------- HTTP: edge behaviour
def test_auth_and_okta_headers(okta_api_fresh: OktaApiServer) -> None:
    base = okta_api_fresh.base_url
    for headers in ({}, {"Authorization": "SSWS wrong"}, {"Authorization": "Bearer sandbox-api-token"}):
        response = httpx.get(base + "/api/v1/users", headers=headers)
        assert response.status_code == 401
        assert response.json()["errorCode"] == "E0000011"
        assert response.json()["errorSummary"] == "Invalid token provided"
    # the okta SDK sends "SSWS<token>" without the space
    assert httpx.get(base + "/api/v1/users", headers={"Authorization": "SSWSsandbox-api-token"}).status_code == 200
    response = httpx.get(base + "/api/v1/groups", headers=AUTH)
    for name in ("x-okta-request-id", "x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset", "date"):
        assert response.headers.get(name), name
    assert int(response.headers["x-rate-limit-reset"]) > time.time() - 1
    unknown = httpx.get(base + "/api/v1/nothing-here", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["errorCode"] == "E0000007"
    wrong_method = httpx.patch(base + "/api/v1/users", headers=AUTH)
    assert wrong_method.status_code == 405 and wrong_method.json()["errorCode"] == "E0000022"


def test_fault_429_then_success(okta_api_client: httpx.Client, okta_api_fresh: OktaApiServer) -> None:
    okta_api_fresh.control("POST", "/__sandbox/faults",
                           {"path_prefix": "/api/v1/users", "status": 429, "count": 2, "retry_after_seconds": 7})
    assert okta_api_client.get("/api/v1/groups").status_code == 200  # other paths are unaffected
    for _ in range(2):
        started = time.time()
        response = okta_api_client.get("/api/v1/users")
        assert response.status_code == 429
        assert response.json()["errorCode"] == "E0000047"
        assert response.json()["errorSummary"] == "API call exceeded rate limit due to too many requests."
        assert response.headers["x-rate-limit-remaining"] == "0"
        assert abs(int(response.headers["x-rate-limit-reset"]) - (started + 7)) <= 2
        assert response.headers["date"] and response.headers["x-okta-request-id"]
    assert okta_api_client.get("/api/v1/users").status_code == 200
    assert okta_api_fresh.control("GET", "/__sandbox/faults").json() == {"faults": []}


def test_bare_503_has_no_okta_headers(okta_api_client: httpx.Client, okta_api_fresh: OktaApiServer) -> None:
    okta_api_fresh.control("POST", "/__sandbox/faults", {"path_prefix": "/api/", "bare": True})
    response = okta_api_client.get("/api/v1/users")
    assert response.status_code == 503
    assert "date" not in response.headers
    assert not [name for name in response.headers if name.lower().startswith("x-rate-limit")]
    with pytest.raises(ValueError):
        response.json()
    assert okta_api_client.get("/api/v1/users").status_code == 200


def test_fault_500_delay_method_and_clear(okta_api_client: httpx.Client, okta_api_fresh: OktaApiServer) -> None:
    okta_api_fresh.control("POST", "/__sandbox/faults",
                           {"path_prefix": "/api/v1/groups", "status": 500, "method": "PUT"})
    assert okta_api_client.get("/api/v1/groups").status_code == 200
    failed = okta_api_client.put(f"/api/v1/groups/{HELPDESK}/users/{CAROL}")
    assert failed.status_code == 500 and failed.json()["errorCode"] == "E0000009"

    okta_api_fresh.control("POST", "/__sandbox/faults", {"path_prefix": "/api/v1/apps", "delay_seconds": 0.6})
    started = time.monotonic()
    assert okta_api_client.get("/api/v1/apps").status_code == 200
    assert time.monotonic() - started >= 0.6
    okta_api_fresh.control("POST", "/__sandbox/faults", {"path_prefix": "/api/v1/apps", "delay_seconds": 1})
    with pytest.raises(httpx.ReadTimeout):  # a client with a short timeout sees a timeout
        okta_api_client.get("/api/v1/apps", timeout=0.3)

    okta_api_fresh.control("POST", "/__sandbox/faults", {"path_prefix": "/api/", "status": 503, "count": 5})
    okta_api_fresh.control("DELETE", "/__sandbox/faults")
    assert okta_api_client.get("/api/v1/users").status_code == 200
    bad = httpx.post(okta_api_fresh.base_url + "/__sandbox/faults", json={"status": 418})
    assert bad.status_code == 400


def test_latency_and_request_log(okta_api_client: httpx.Client, okta_api_fresh: OktaApiServer) -> None:
    okta_api_fresh.control("DELETE", "/__sandbox/requests")
    assert okta_api_fresh.control("GET", "/__sandbox/requests").json() == {
        "count": 0, "answer_seconds": 0.0, "requests": []}
    okta_api_fresh.control("POST", "/__sandbox/latency", {"seconds": 0.25})
    started = time.monotonic()
    okta_api_client.get("/api/v1/users", params={"q": "al"})
    assert time.monotonic() - started >= 0.25
    okta_api_fresh.control("DELETE", "/__sandbox/latency")
    okta_api_client.post(f"/api/v1/users/{ALICE}/lifecycle/suspend")
    elapsed = time.monotonic() - started
    log = okta_api_fresh.control("GET", "/__sandbox/requests").json()
    assert log["count"] == 2  # control calls are not API requests
    # The latency served: from each request's arrival to its response's start, both requests summed.
    assert 0.25 <= log["answer_seconds"] < elapsed
    assert [(r["method"], r["path"], r["query"]) for r in log["requests"]] == [
        ("GET", "/api/v1/users", "q=al"), ("POST", f"/api/v1/users/{ALICE}/lifecycle/suspend", "")]


def test_reset_restores_the_seed(okta_api_client: httpx.Client, okta_api_fresh: OktaApiServer) -> None:
    okta_api_client.post(f"/api/v1/users/{ALICE}/lifecycle/suspend")
    okta_api_fresh.control("POST", "/__sandbox/latency", {"seconds": 0.5})
    okta_api_fresh.control("POST", "/__sandbox/reset")
    assert okta_api_client.get(f"/api/v1/users/{ALICE}").json()["status"] == "ACTIVE"
    started = time.monotonic()
    okta_api_client.get("/api/v1/users")
    assert time.monotonic() - started < 0.5


# --------------------------------------------------------------------------- harness units
def test_rate_limit_window_enforced_and_reported() -> None:
    harness = Harness()
    results = [harness.consume_rate_limit("GET /api/v1/users", 3, enforced=True) for _ in range(4)]
    assert [r[1] for r in results] == [2, 1, 0, 0] and [r[3] for r in results] == [False, False, False, True]
    relaxed = [harness.consume_rate_limit("GET /api/v1/groups", 0, enforced=False) for _ in range(700)]
    assert relaxed[-1][1] == 1 and not any(r[3] for r in relaxed)


def test_fault_validation() -> None:
    assert parse_fault({"bare": True}).status == 503
    for bad in ({"status": 404}, {"status": 500, "bare": True}, {"path_prefix": "api"}, {},
                {"status": 429, "count": 0}, {"status": 429, "colour": "red"}):
        with pytest.raises(ValueError):
            parse_fault(bad)
