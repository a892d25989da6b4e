"""Every read tool through the official MCP SDK client against the server under daphne and the
sandbox Okta API: a success in the compact form and in the full form, and a not-found (for tools
that name one object). Paging across three pages with an opaque cursor, and cursors that were
tampered with or belong elsewhere refused before any Okta call."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.okta_tools.conftest import (
    ALICE,
    BOB,
    CONTRACTORS,
    EVERYONE,
    HELPDESK,
    IDENTITY_ADMINS,
    JANE,
    Sandbox,
    World,
    error,
    ok,
    run,
)
from tools.registry import REGISTRY

APP = "0oasf9p0oDpBY7Vu44x6"  # AddBasicAuthApp: Helpdesk assigned, bob through it
POLICY = "00psfar1lATHw2WXj4x6"  # an OKTA_SIGN_ON policy with one rule
POLICY_RULE = "0prsfe5f85pTFjdRU4x6"
GROUP_RULE = "0prsfncw9sygwaEYW4x6"
ZONE = "nzo10bcxca6D4LW0c5d7"
AUTHENTICATOR = "autnwmp13uwJXWgn95d7"
DEVICE = "guonli06qyirBuaHF1d7"
DEVICE_ASSURANCE = "daeq6dc7ijiFkZYwc1d7"
IDP = "0oasfadumMMpFPz5T4x6"
AUTH_SERVER = "ausc04qbv1PS5ygdb4x6"
TRUSTED_ORIGIN = "tosc16b737nVjGaEb4x6"
MISSING = "00x0000000000missing"
SINCE = (datetime.now(timezone.utc) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ids(result: dict[str, Any], key: str = "id") -> list[Any]:
    return [item[key] for item in result["items"]]


# tool, arguments, a check of the compact result, the field naming the object (for not-found)
READS: list[tuple[str, dict[str, Any], Any, str | None]] = [
    ("list_users", {}, lambda r: {ALICE, BOB, JANE} <= set(_ids(r)), None),
    ("list_users", {"search": 'profile.lastName eq "Doe"'}, lambda r: _ids(r) == [JANE], None),
    ("list_users", {"filter": 'status eq "LOCKED_OUT"'}, lambda r: _ids(r) == [JANE], None),
    ("list_users", {"q": "car"}, lambda r: [i["login"] for i in r["items"]] == ["carol@acme.example"], None),
    ("get_user", {"user": "jane.doe@acme.example"}, lambda r: (r["id"], r["status"]) == (JANE, "LOCKED_OUT"), "user"),
    ("list_user_groups", {"user": "alice@acme.example"}, lambda r: set(_ids(r)) == {EVERYONE, IDENTITY_ADMINS}, "user"),
    ("list_user_app_links", {"user": ALICE}, lambda r: r["returned"] >= 1 and r["items"][0]["app_instance_id"], "user"),
    ("list_user_factors", {"user": ALICE}, lambda r: r["returned"] >= 1 and r["items"][0]["factor_type"], "user"),
    ("list_user_roles", {"user": "bob@acme.example"}, lambda r: [i["type"] for i in r["items"]] == ["READ_ONLY_ADMIN"], "user"),
    ("list_groups", {"q": "Help"}, lambda r: _ids(r) == [HELPDESK], None),
    ("list_groups", {"search": 'type eq "BUILT_IN"'}, lambda r: _ids(r) == [EVERYONE], None),
    ("get_group", {"group_id": CONTRACTORS}, lambda r: r["name"] == "Contractors", "group_id"),
    ("list_group_members", {"group_id": EVERYONE}, lambda r: r["returned"] == 4, "group_id"),
    ("list_group_apps", {"group_id": HELPDESK}, lambda r: APP in _ids(r), "group_id"),
    ("list_group_rules", {}, lambda r: _ids(r) == [GROUP_RULE] and r["items"][0]["assigns_group_ids"] == [CONTRACTORS], None),
    ("get_group_rule", {"rule_id": GROUP_RULE}, lambda r: r["status"] == "INACTIVE" and r["expression"], "rule_id"),
    ("list_apps", {}, lambda r: APP in _ids(r), None),
    ("list_apps", {"filter": 'status eq "INACTIVE"'}, lambda r: r["returned"] >= 1 and {i["status"] for i in r["items"]} == {"INACTIVE"}, None),
    ("get_app", {"app_id": APP}, lambda r: r["label"] == "AddBasicAuthApp" and r["sign_on_mode"] == "BASIC_AUTH", "app_id"),
    ("list_app_users", {"app_id": APP}, lambda r: _ids(r) == [BOB] and r["items"][0]["scope"] == "GROUP", "app_id"),
    ("list_app_groups", {"app_id": APP}, lambda r: _ids(r) == [HELPDESK], "app_id"),
    ("list_policies", {"type": "OKTA_SIGN_ON"}, lambda r: POLICY in _ids(r) and {i["type"] for i in r["items"]} == {"OKTA_SIGN_ON"}, None),
    ("get_policy", {"policy_id": POLICY}, lambda r: r["type"] == "OKTA_SIGN_ON", "policy_id"),
    ("list_policy_rules", {"policy_id": POLICY}, lambda r: _ids(r) == [POLICY_RULE], "policy_id"),
    ("get_policy_rule", {"policy_id": POLICY, "rule_id": POLICY_RULE}, lambda r: r["id"] == POLICY_RULE, "rule_id"),
    ("query_system_log", {"filter": 'eventType eq "group.user_membership.add"', "since": SINCE}, None, None),
    ("query_system_log", {"q": "membership", "since": SINCE}, lambda r: r["returned"] >= 3, None),
    ("user_sign_in_failures", {"user": "jane.doe@acme.example"}, None, "user"),
    ("list_network_zones", {}, lambda r: ZONE in _ids(r), None),
    ("get_network_zone", {"zone_id": ZONE}, lambda r: r["gateways"] == ["1.2.3.4/24"], "zone_id"),
    ("list_authenticators", {}, lambda r: AUTHENTICATOR in _ids(r), None),
    ("get_authenticator", {"authenticator_id": AUTHENTICATOR}, lambda r: r["key"] == "okta_password", "authenticator_id"),
    ("list_devices", {}, lambda r: DEVICE in _ids(r), None),
    ("get_device", {"device_id": DEVICE}, lambda r: r["platform"] == "IOS" and r["status"] == "SUSPENDED", "device_id"),
    ("list_device_assurance_policies", {}, lambda r: DEVICE_ASSURANCE in _ids(r), None),
    ("get_device_assurance_policy", {"policy_id": DEVICE_ASSURANCE}, lambda r: r["platform"] == "IOS", "policy_id"),
    ("list_identity_providers", {}, lambda r: IDP in _ids(r), None),
    ("get_identity_provider", {"idp_id": IDP}, lambda r: r["type"] == "LINKEDIN", "idp_id"),
    ("list_authorization_servers", {}, lambda r: AUTH_SERVER in _ids(r), None),
    ("get_authorization_server", {"server_id": AUTH_SERVER}, lambda r: r["audiences"] == ["api://default"], "server_id"),
    ("list_trusted_origins", {}, lambda r: TRUSTED_ORIGIN in _ids(r), None),
    ("get_trusted_origin", {"origin_id": TRUSTED_ORIGIN}, lambda r: r["scopes"] == ["CORS", "REDIRECT"], "origin_id"),
]


@pytest.mark.django_db
def test_every_read_tool_is_covered_here_and_granted_to_viewers() -> None:
    """The demo policy grants the Helpdesk viewer every read tool and nothing else, from the
    registry (so a new tool is granted without editing the seed). (Marked django_db, it also makes
    pytest-django create the test database when this file runs alone.)"""
    from tools.selectors import tools_allowed_for
    from tools.services import policy_seed_demo

    read_tools = {n for n, s in REGISTRY.items() if s.access == "read" and s.name != "whoami"}
    assert read_tools == {tool for tool, *_ in READS}
    policy_seed_demo()
    viewer = tools_allowed_for(groups=["Everyone", "Helpdesk"], scopes=["mcp.read", "mcp.write"])
    assert viewer.usable == read_tools | {"whoami"}
    admin = tools_allowed_for(groups=["Everyone", "Identity Admins"], scopes=["mcp.read", "mcp.write"])
    assert admin.usable == set(REGISTRY) and len(REGISTRY) == 45
    assert tools_allowed_for(groups=["Everyone", "Contractors"], scopes=["mcp.read", "mcp.write"]).granted == frozenset()


def test_every_read_tool_compact_full_and_not_found(world: World, sandbox: Sandbox, db_access: None) -> None:
    """bob (the Helpdesk viewer) calls every read tool: the compact result has the fields a person
    needs and no `full`; `full: true` adds Okta's whole object; an unknown id is a clear error."""

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {"compact": [], "full": [], "missing": []}
        async with world.client("bob") as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            out["listed"] = listed
            for tool, arguments, _, what in READS:
                out["compact"].append(await client.call_tool(tool, arguments))
                out["full"].append(await client.call_tool(tool, {**arguments, "full": True}))
                if what:
                    missing = {**arguments, what: "nosuch@acme.example" if what == "user" else MISSING}
                    out["missing"].append((tool, what, await client.call_tool(tool, missing)))
        return out

    out = run(scenario)
    listed = out["listed"]
    for (tool, arguments, check, _), compact, full in zip(READS, out["compact"], out["full"], strict=True):
        result, whole = ok(compact), ok(full)
        items = result.get("items")
        if check is not None:
            assert check(result), (tool, arguments, result)
        if items is not None:
            assert all(i.get("full") is None for i in items), tool
            assert [i.get("full") for i in whole["items"]] and all(isinstance(i["full"], dict) for i in whole["items"]), tool
            # The full object is Okta's own: camelCase keys the compact form does not have.
            assert all(("id" in i["full"]) or ("uuid" in i["full"]) or ("appInstanceId" in i["full"]) for i in whole["items"]), tool
            assert result["returned"] == len(items) and len(whole["items"]) == len(items)
        else:
            assert result.get("full") is None and isinstance(whole["full"], dict) and whole["full"]["id"] == result["id"], tool
        annotations = listed[tool].annotations
        assert annotations.read_only_hint is True and annotations.destructive_hint is False, tool
        assert annotations.open_world_hint is True and annotations.idempotent_hint is True, tool
        schema = listed[tool].input_schema
        assert schema.get("additionalProperties") is False, tool
        if "limit" in schema["properties"]:
            limit = schema["properties"]["limit"]
            assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 20), tool
    for tool, what, result in out["missing"]:
        message = error(result)
        assert message.startswith("no Okta ") and "[request " in message, (tool, message)
    # whoami is ours, not Okta's: no open-world hint.
    assert listed["whoami"].annotations.open_world_hint is False


def test_system_log_and_sign_in_failures(world: World, sandbox: Sandbox, db_access: None) -> None:
    async def scenario() -> dict[str, Any]:
        async with world.client("bob") as client:
            return {
                "failures": await client.call_tool("user_sign_in_failures", {"user": "jane.doe@acme.example"}),
                "alice": await client.call_tool("user_sign_in_failures", {"user": ALICE}),
                "memberships": await client.call_tool(
                    "query_system_log",
                    {"filter": 'eventType eq "group.user_membership.add" and target.id eq "00g1helpdesk000000001"', "since": SINCE},
                ),
                "window": await client.call_tool("query_system_log", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
                "too_long": await client.call_tool("query_system_log", {"since": "2000-01-01T00:00:00Z", "until": "2001-01-01T00:00:00Z"}),
                "bad_filter": await client.call_tool("query_system_log", {"filter": "nonsense here"}),
            }

    out = run(scenario)
    failures = ok(out["failures"])
    assert failures["user"]["status"] == "LOCKED_OUT" and "locked out" in failures["status_note"]
    # Jane's three failed sign-ins and the lockout, newest first.
    assert [e["event_type"] for e in failures["items"]] == ["user.account.lock"] + ["user.session.start"] * 3
    assert {e["outcome"] for e in failures["items"]} == {"FAILURE"}
    assert failures["items"][1]["reason"] == "INVALID_CREDENTIALS" and failures["items"][1]["client_ip"] == "198.51.100.23"
    published = [e["published"] for e in failures["items"]]
    assert published == sorted(published, reverse=True)
    alice = ok(out["alice"])
    assert alice["items"] == [] and alice["status_note"] is None
    memberships = ok(out["memberships"])
    assert memberships["returned"] == 1 and memberships["items"][0]["targets"][1]["id"] == HELPDESK
    assert memberships["since"] == SINCE.replace("Z", ".000Z")
    assert "since must be before until" in error(out["window"])
    assert "at most 90 days" in error(out["too_long"])
    # Okta parses the filter and says what is wrong, with its errorCode and request id.
    message = error(out["bad_filter"])
    assert "E0000001" in message and "[request " in message


def test_paging_across_three_pages_with_opaque_cursor(world: World, sandbox: Sandbox, db_access: None) -> None:
    """454 users at 200 a page: three pages, no user twice, none missing. The cursor is opaque
    (Okta's `after` is not visible in it) and bound to the tool and the query."""
    sandbox.reset(extra_users=450)

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {"pages": []}
        async with world.client("bob") as client:
            result = ok(await client.call_tool("list_users", {"limit": 200}))
            out["pages"].append(result)
            while result["next_cursor"]:
                result = ok(await client.call_tool("list_users", {"limit": 200, "cursor": result["next_cursor"]}))
                out["pages"].append(result)
            first_cursor = out["pages"][0]["next_cursor"]
            before = sandbox.count()
            tampered = first_cursor[:-3] + ("AAA" if not first_cursor.endswith("AAA") else "BBB")
            out["tampered"] = await client.call_tool("list_users", {"limit": 200, "cursor": tampered})
            out["other_tool"] = await client.call_tool("list_groups", {"cursor": first_cursor})
            out["other_query"] = await client.call_tool("list_users", {"cursor": first_cursor, "q": "al"})
            out["garbage"] = await client.call_tool("list_users", {"cursor": "not a cursor"})
            out["requests_for_bad_cursors"] = sandbox.count() - before
            # Paging of a listing Okta returns whole: alice's factors one at a time.
            factors, cursor = [], None
            while True:
                page = ok(await client.call_tool("list_user_factors", {"user": ALICE, "limit": 1, **({"cursor": cursor} if cursor else {})}))
                factors += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            out["factors"] = factors
            out["factor_cursor_other_user"] = await client.call_tool(
                "list_user_factors", {"user": BOB, "limit": 1, "cursor": ok(await client.call_tool("list_user_factors", {"user": ALICE, "limit": 1}))["next_cursor"]}
            )
        return out

    out = run(scenario)
    pages = out["pages"]
    assert [p["returned"] for p in pages] == [200, 200, 54]
    ids = [u["id"] for p in pages for u in p["items"]]
    assert len(ids) == len(set(ids)) == 454
    assert pages[-1]["next_cursor"] is None
    assert "00u00000000000000200" not in pages[0]["next_cursor"]
    assert {ALICE, BOB, JANE, "00u00000000000000001", "00u00000000000000450"} <= set(ids)
    for key in ("tampered", "other_tool", "other_query", "garbage", "factor_cursor_other_user"):
        message = error(out[key])
        assert message.startswith(("invalid cursor", "Invalid arguments")), (key, message)
    assert "another tool" in error(out["other_tool"]) and "q differs" in error(out["other_query"])
    assert out["requests_for_bad_cursors"] == 0
    assert len(out["factors"]) == len({f["id"] for f in out["factors"]}) >= 2


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def test_compact_users_are_okta_s_fields_and_a_listing_keeps_one_connection(
    world: World, sandbox: Sandbox, db_access: None
) -> None:
    """Every compact user of a listing is Okta's JSON field for field (dates as the same instants),
    and get_user says the same of one. The server's Okta requests of the listing all came over one
    kept-alive connection (the sandbox records each request's client port)."""
    sandbox.reset(extra_users=30)
    okta = {u["id"]: u for u in sandbox.get("/api/v1/users", limit=200)}

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {"pages": []}
        async with world.client("bob") as client:
            mark = len(sandbox.requests())
            result = ok(await client.call_tool("list_users", {"limit": 10}))
            out["pages"].append(result)
            while result["next_cursor"]:
                result = ok(await client.call_tool("list_users", {"limit": 10, "cursor": result["next_cursor"]}))
                out["pages"].append(result)
            out["requests"] = sandbox.requests()[mark:]
            out["jane"] = ok(await client.call_tool("get_user", {"user": "jane.doe@acme.example"}))
        return out

    out = run(scenario)
    items = [item for page in out["pages"] for item in page["items"]]
    assert len(out["pages"]) == 4 and len(items) == len(okta) == 34 and {i["id"] for i in items} == set(okta)
    for item in items + [out["jane"]]:
        user = okta[item["id"]]
        profile = user["profile"]
        assert {**item, **{k: _instant(item[k]) for k in ("last_login", "created", "status_changed")}} == {
            "id": user["id"], "status": user["status"], "login": profile["login"], "email": profile.get("email"),
            "first_name": profile.get("firstName"), "last_name": profile.get("lastName"),
            "last_login": _instant(user.get("lastLogin")), "created": _instant(user.get("created")),
            "status_changed": _instant(user.get("statusChanged")), "full": None,
        }, item["id"]  # fmt: skip
    assert out["jane"] == next(i for i in items if i["id"] == JANE)
    listing = [r for r in out["requests"] if r["path"] == "/api/v1/users"]
    assert len(listing) == 4 and len({r["client_port"] for r in out["requests"]}) == 1
