"""Okta Management API routes served by the stand-in (Okta paths, Okta JSON shapes)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import expressions as ex
from .errors import OktaError, invalid_search, validation_failed
from .state import (
    ORIGIN,
    Document,
    RequestContext,
    State,
    paginate,
    parse_time,
    utcnow,
)

# ------------------------------------------------------------------ grammars for filter / search
_RANGE = frozenset({"eq", "gt", "ge", "lt", "le"})
_SEARCH_OPS = ex.ALL_OPERATORS
_USER_DATES = {"created", "activated", "statusChanged", "lastUpdated", "lastLogin", "passwordChanged"}

USER_FILTER = ex.Grammar(
    frozenset({"status", "id", "type.id", "profile.login", "profile.email", "profile.firstName",
               "profile.lastName"} | _USER_DATES),
    _RANGE,
)
USER_SEARCH = ex.Grammar(frozenset({"status", "id", "type.id"} | _USER_DATES), _SEARCH_OPS, ("profile.",))
GROUP_FILTER = ex.Grammar(
    frozenset({"id", "type", "profile.name", "created", "lastUpdated", "lastMembershipUpdated"}), _RANGE
)
GROUP_SEARCH = ex.Grammar(
    frozenset({"id", "type", "created", "lastUpdated", "lastMembershipUpdated"}), _SEARCH_OPS, ("profile.",)
)
APP_FILTER = ex.Grammar(frozenset({"status", "name", "signOnMode", "user.id", "group.id"}), frozenset({"eq"}))
LOG_FILTER = ex.Grammar(
    frozenset({"eventType", "legacyEventType", "uuid", "severity", "displayMessage", "published",
               "outcome.result", "outcome.reason", "actor.id", "actor.type", "actor.alternateId",
               "actor.displayName", "target.id", "target.type", "target.alternateId", "target.displayName",
               "client.ipAddress", "client.zone", "transaction.id", "transaction.type"}),
    frozenset({"eq", "ne", "sw", "co", "ew", "pr", "gt", "ge", "lt", "le"}),
)
ZONE_FILTER = ex.Grammar(frozenset({"id", "usage", "system", "type", "status"}), frozenset({"eq"}))
DEVICE_SEARCH = ex.Grammar(
    frozenset({"id", "status", "created", "lastUpdated"}), _SEARCH_OPS, ("profile.",)
)
TRUSTED_ORIGIN_FILTER = ex.Grammar(frozenset({"id", "name", "origin", "status"}), frozenset({"eq", "sw", "co"}))


# ------------------------------------------------------------------ paging limits, per the contract
@dataclass(frozen=True)
class Limits:
    default: int | None  # None: everything in one page unless the client asks for a limit
    maximum: int | None
    minimum: int = 1


USERS = Limits(200, 200)
GROUPS = Limits(10000, 10000)
GROUP_MEMBERS = Limits(1000, 1000)
GROUP_APPS = Limits(20, 200)
GROUP_RULES = Limits(50, 200)
APPS = Limits(None, 200)
APP_USERS = Limits(50, 500)
APP_GROUPS = Limits(20, 200, minimum=20)
POLICIES = Limits(None, 200)
LOGS = Limits(100, 1000)
ZONES = Limits(None, None)
DEVICES = Limits(200, 200)
IDPS = Limits(20, 200)
AUTH_SERVERS = Limits(200, 200)
TRUSTED_ORIGINS = Limits(20, 200)

POLICY_TYPES = frozenset({"OKTA_SIGN_ON", "PASSWORD", "MFA_ENROLL", "IDP_DISCOVERY", "ACCESS_POLICY",
                          "DEVICE_SIGNAL_COLLECTION", "PROFILE_ENROLLMENT", "POST_AUTH_SESSION", "ENTITY_RISK"})


# ------------------------------------------------------------------ response helpers
def _state(request: Request) -> State:
    return request.app.state.sandbox.state


def public_origin(request: Request) -> str:
    configured = request.app.state.sandbox.config.public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def okta_json(request: Request, body: Any, status: int = 200) -> Response:
    """JSON with the stored placeholder origin replaced by the URL the client used."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(text.replace(ORIGIN, public_origin(request)), status, media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204)


def request_context(request: Request) -> RequestContext:
    return RequestContext(
        ip_address=request.client.host if request.client else "127.0.0.1",
        user_agent=request.headers.get("user-agent", "unknown"),
        request_id=request.scope.get("okta_request_id", ""),
        request_uri=request.url.path,
    )


def _limit(request: Request, limits: Limits) -> int | None:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return limits.default
    try:
        value = int(raw)
    except ValueError:
        raise validation_failed("limit", ["limit must be an integer"]) from None
    if value <= 0:  # e.g. -1, the contract's default for apps and zones: the default page (or all)
        return limits.default
    if limits.maximum is not None:
        value = min(value, limits.maximum)
    return max(value, limits.minimum)


def paged(
    request: Request,
    items: list[Document],
    limits: Limits,
    render: Callable[[Document], Document] = lambda item: item,
    keys: list[str] | None = None,
    descending: bool = False,
) -> Response:
    """One page with Okta's `Link: <...>; rel="self"` and, if more remain, `rel="next"` headers.

    Items are in id order unless the caller passes their cursor `keys`.
    """
    limit = _limit(request, limits)
    keys = keys if keys is not None else [item["id"] for item in items]
    page = paginate(items, keys, request.query_params.get("after"), limit, descending)
    return page_response(request, [render(item) for item in page.items], page.next_after, limit)


def page_response(request: Request, body: list[Document], next_after: str | None, limit: int | None) -> Response:
    """A page of results with Okta's Link headers; `next_after` is the cursor of the next page."""
    response = okta_json(request, body)
    base = public_origin(request) + request.url.path
    query = request.url.query
    response.headers.append("link", f'<{base}{"?" + query if query else ""}>; rel="self"')
    if next_after is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "limit")]
        params += [("after", next_after), ("limit", str(limit))]
        response.headers.append("link", f'<{base}?{urlencode(params)}>; rel="next"')
    return response


def _expression(request: Request, name: str, grammar: ex.Grammar) -> ex.Expression | None:
    text = request.query_params.get(name)
    if text is None or not text.strip():
        return None
    try:
        return ex.parse(text, grammar)
    except ex.ExpressionError as error:
        if name == "search":
            raise invalid_search(str(error)) from None
        raise validation_failed(name, [f"Invalid {name} expression: {error}"]) from None


def _prefix_match(needle: str | None, *values: Any) -> bool:
    if not needle:
        return True
    needle = needle.lower()
    return any(isinstance(value, str) and value.lower().startswith(needle) for value in values)


# ------------------------------------------------------------------ users
async def list_users(request: Request) -> Response:
    state = _state(request)
    search = _expression(request, "search", USER_SEARCH)
    filter_ = _expression(request, "filter", USER_FILTER)
    matches = state.find_users(
        request.query_params.get("q"),
        filter_,
        search,
        filter_mentions_status=filter_ is not None and "status" in ex.attributes_of(filter_),
        after=request.query_params.get("after"),
    )
    limit = _limit(request, USERS) or 200
    page = list(itertools.islice(matches, limit + 1))  # one more than a page tells if another follows
    next_after = page[limit - 1]["id"] if len(page) > limit else None
    return page_response(request, [state.render_user(user, detail=False) for user in page[:limit]], next_after, limit)


def _user_from_path(request: Request) -> Document:
    state = _state(request)
    key = request.path_params["id"]
    if key == "me":  # the API token's own user, as Okta resolves /users/me
        key = state.principal_user_id
    return state.user(key)


async def get_user(request: Request) -> Response:
    return okta_json(request, _state(request).render_user(_user_from_path(request), detail=True))


async def list_user_groups(request: Request) -> Response:
    state = _state(request)
    user = _user_from_path(request)
    groups = [state.groups[group_id] for group_id in state.user_group_ids(user["id"])]
    return paged(request, groups, GROUPS)


async def list_user_app_links(request: Request) -> Response:
    state = _state(request)
    return okta_json(request, state.app_links(_user_from_path(request)["id"]))


async def list_user_factors(request: Request) -> Response:
    state = _state(request)
    return okta_json(request, state.factors.get(_user_from_path(request)["id"], []))


async def list_user_roles(request: Request) -> Response:
    state = _state(request)
    return okta_json(request, state.roles_for_user(_user_from_path(request)["id"]))


async def user_lifecycle(request: Request) -> Response:
    state = _state(request)
    send_email = request.query_params.get("sendEmail", "true").lower() != "false"
    body = state.change_user_status(
        request.path_params["id"], request.path_params["action"], request_context(request), send_email
    )
    return okta_json(request, body)


async def revoke_user_sessions(request: Request) -> Response:
    _state(request).clear_sessions(request.path_params["id"], request_context(request))
    return no_content()


# ------------------------------------------------------------------ groups
async def list_groups(request: Request) -> Response:
    state = _state(request)
    search = _expression(request, "search", GROUP_SEARCH)
    filter_ = _expression(request, "filter", GROUP_FILTER)
    groups = state.find_groups(request.query_params.get("q"), search or filter_)
    with_stats = "stats" in request.query_params.get("expand", "")
    return paged(request, groups, GROUPS, render=lambda group: state.render_group(group, with_stats))


async def get_group(request: Request) -> Response:
    state = _state(request)
    with_stats = "stats" in request.query_params.get("expand", "")
    return okta_json(request, state.render_group(state.group(request.path_params["group_id"]), with_stats))


async def list_group_users(request: Request) -> Response:
    state = _state(request)
    group = state.group(request.path_params["group_id"])
    members = [state.users[user_id] for user_id in sorted(state.memberships.get(group["id"], ()))]
    return paged(request, members, GROUP_MEMBERS, render=lambda user: state.render_user(user, detail=False))


async def list_group_apps(request: Request) -> Response:
    state = _state(request)
    group = state.group(request.path_params["group_id"])
    return paged(request, [state.apps[app_id] for app_id in state.app_ids_for_group(group["id"])], GROUP_APPS)


async def assign_user_to_group(request: Request) -> Response:
    _state(request).set_membership(
        request.path_params["group_id"], request.path_params["user_id"], True, request_context(request)
    )
    return no_content()


async def unassign_user_from_group(request: Request) -> Response:
    _state(request).set_membership(
        request.path_params["group_id"], request.path_params["user_id"], False, request_context(request)
    )
    return no_content()


async def list_group_rules(request: Request) -> Response:
    state = _state(request)
    keyword = (request.query_params.get("search") or "").lower()
    rules = [rule for rule in state.catalog_items("group_rules") if keyword in rule.get("name", "").lower()]
    return paged(request, rules, GROUP_RULES)


async def get_group_rule(request: Request) -> Response:
    return okta_json(request, _state(request).catalog_item("group_rules", request.path_params["rule_id"]))


# ------------------------------------------------------------------ apps
async def list_apps(request: Request) -> Response:
    state = _state(request)
    apps = state.find_apps(request.query_params.get("q"), _expression(request, "filter", APP_FILTER))
    return paged(request, apps, APPS)


async def get_app(request: Request) -> Response:
    return okta_json(request, _state(request).app(request.path_params["app_id"]))


async def list_app_users(request: Request) -> Response:
    state = _state(request)
    needle = request.query_params.get("q")
    assignments = [
        assignment
        for assignment in state.app_user_assignments(request.path_params["app_id"])
        if _prefix_match(needle, (assignment.get("credentials") or {}).get("userName"),
                         *(state.users[assignment["id"]]["profile"].get(k) for k in ("firstName", "lastName")))
    ]
    return paged(request, assignments, APP_USERS)


async def list_app_groups(request: Request) -> Response:
    state = _state(request)
    app = state.app(request.path_params["app_id"])
    needle = request.query_params.get("q")
    assignments = [
        state.app_groups[app["id"]][group_id]
        for group_id in sorted(state.app_groups.get(app["id"], {}))
        if _prefix_match(needle, state.groups[group_id]["profile"]["name"])
    ]
    return paged(request, assignments, APP_GROUPS)


# ------------------------------------------------------------------ policies
async def list_policies(request: Request) -> Response:
    state = _state(request)
    policy_type = request.query_params.get("type")
    if not policy_type:
        raise validation_failed("type", ["The policy type is required."])
    if policy_type not in POLICY_TYPES:
        raise validation_failed("type", [f"Invalid policy type: {policy_type}"])
    status = request.query_params.get("status")
    needle = (request.query_params.get("q") or "").lower()
    policies = [
        state.policies[policy_id]
        for policy_id in sorted(state.policies)
        if state.policies[policy_id].get("type") == policy_type
        and (status is None or state.policies[policy_id].get("status") == status)
        and needle in state.policies[policy_id].get("name", "").lower()
    ]
    return paged(request, policies, POLICIES)


async def get_policy(request: Request) -> Response:
    return okta_json(request, _state(request).policy(request.path_params["policy_id"]))


async def list_policy_rules(request: Request) -> Response:
    state = _state(request)
    policy = state.policy(request.path_params["policy_id"])
    rules = sorted(state.policy_rules.get(policy["id"], {}).values(), key=lambda r: (r.get("priority", 0), r["id"]))
    return okta_json(request, rules)


async def get_policy_rule(request: Request) -> Response:
    params = request.path_params
    return okta_json(request, _state(request).policy_rule(params["policy_id"], params["rule_id"]))


# ------------------------------------------------------------------ System Log
async def list_log_events(request: Request) -> Response:
    state = _state(request)
    params = request.query_params
    try:
        until = parse_time(params["until"]) if params.get("until") else utcnow()
        since = parse_time(params["since"]) if params.get("since") else until - timedelta(days=7)
    except ValueError:
        raise OktaError(
            400, "E0000030",
            "Bad request. Invalid date. Dates must be of the form yyyy-MM-dd'T'HH:mm:ss.SSSZZ, "
            "e.g. 2013-01-01T12:00:00.000-07:00.",
        ) from None
    sort_order = params.get("sortOrder", "ASCENDING").upper()
    if sort_order not in ("ASCENDING", "DESCENDING"):
        raise validation_failed("sortOrder", ["sortOrder must be ASCENDING or DESCENDING"])
    keywords = [word.lower() for word in (params.get("q") or "").split()]
    if len(keywords) > 10 or any(len(word) > 40 for word in keywords):
        raise validation_failed("q", ["At most 10 keywords of at most 40 characters each."])
    events, keys = state.find_log_events(
        since, until, _expression(request, "filter", LOG_FILTER), keywords, sort_order == "DESCENDING"
    )
    return paged(request, events, LOGS, keys=keys, descending=sort_order == "DESCENDING")


# ------------------------------------------------------------------ read-only recorded families
def _catalog_list(
    family: str,
    limits: Limits | None,
    *,
    q_fields: tuple[str, ...] = (),
    filter_grammar: ex.Grammar | None = None,
    search_grammar: ex.Grammar | None = None,
    param_fields: dict[str, str] | None = None,
) -> Callable[[Request], Any]:
    async def handler(request: Request) -> Response:
        state = _state(request)
        items = state.catalog_items(family)
        needle = request.query_params.get("q")
        if needle and q_fields:
            items = [
                item for item in items if _prefix_match(needle, *(v for f in q_fields for v in ex.dotted(item, f)))
            ]
        for param, attribute in (param_fields or {}).items():
            value = request.query_params.get(param)
            if value:
                items = [item for item in items if ex.dotted(item, attribute) == [value]]
        for name, grammar in (("filter", filter_grammar), ("search", search_grammar)):
            expression = _expression(request, name, grammar) if grammar else None
            if expression is not None:
                items = [i for i in items if ex.evaluate(expression, lambda attribute, i=i: ex.dotted(i, attribute))]
        if limits is None:  # the contract gives this list no paging
            return okta_json(request, items)
        return paged(request, items, limits)

    return handler


def _catalog_get(family: str, param: str) -> Callable[[Request], Any]:
    async def handler(request: Request) -> Response:
        return okta_json(request, _state(request).catalog_item(family, request.path_params[param]))

    return handler


API_ROUTES = [
    Route("/api/v1/users", list_users, methods=["GET"]),
    Route("/api/v1/users/{id}", get_user, methods=["GET"]),
    Route("/api/v1/users/{id}/groups", list_user_groups, methods=["GET"]),
    Route("/api/v1/users/{id}/appLinks", list_user_app_links, methods=["GET"]),
    Route("/api/v1/users/{id}/factors", list_user_factors, methods=["GET"]),
    Route("/api/v1/users/{id}/roles", list_user_roles, methods=["GET"]),
    Route("/api/v1/users/{id}/lifecycle/{action}", user_lifecycle, methods=["POST"]),
    Route("/api/v1/users/{id}/sessions", revoke_user_sessions, methods=["DELETE"]),
    Route("/api/v1/groups", list_groups, methods=["GET"]),
    Route("/api/v1/groups/rules", list_group_rules, methods=["GET"]),
    Route("/api/v1/groups/rules/{rule_id}", get_group_rule, methods=["GET"]),
    Route("/api/v1/groups/{group_id}", get_group, methods=["GET"]),
    Route("/api/v1/groups/{group_id}/users", list_group_users, methods=["GET"]),
    Route("/api/v1/groups/{group_id}/apps", list_group_apps, methods=["GET"]),
    Route("/api/v1/groups/{group_id}/users/{user_id}", assign_user_to_group, methods=["PUT"]),
    Route("/api/v1/groups/{group_id}/users/{user_id}", unassign_user_from_group, methods=["DELETE"]),
    Route("/api/v1/apps", list_apps, methods=["GET"]),
    Route("/api/v1/apps/{app_id}", get_app, methods=["GET"]),
    Route("/api/v1/apps/{app_id}/users", list_app_users, methods=["GET"]),
    Route("/api/v1/apps/{app_id}/groups", list_app_groups, methods=["GET"]),
    Route("/api/v1/policies", list_policies, methods=["GET"]),
    Route("/api/v1/policies/{policy_id}", get_policy, methods=["GET"]),
    Route("/api/v1/policies/{policy_id}/rules", list_policy_rules, methods=["GET"]),
    Route("/api/v1/policies/{policy_id}/rules/{rule_id}", get_policy_rule, methods=["GET"]),
    Route("/api/v1/logs", list_log_events, methods=["GET"]),
    Route("/api/v1/zones", _catalog_list("zones", ZONES, filter_grammar=ZONE_FILTER), methods=["GET"]),
    Route("/api/v1/zones/{zone_id}", _catalog_get("zones", "zone_id"), methods=["GET"]),
    Route("/api/v1/authenticators", _catalog_list("authenticators", None), methods=["GET"]),
    Route("/api/v1/authenticators/{authenticator_id}", _catalog_get("authenticators", "authenticator_id"),
          methods=["GET"]),
    Route("/api/v1/devices", _catalog_list("devices", DEVICES, search_grammar=DEVICE_SEARCH), methods=["GET"]),
    Route("/api/v1/devices/{device_id}", _catalog_get("devices", "device_id"), methods=["GET"]),
    Route("/api/v1/device-assurances", _catalog_list("device_assurances", None), methods=["GET"]),
    Route("/api/v1/device-assurances/{policy_id}", _catalog_get("device_assurances", "policy_id"), methods=["GET"]),
    Route("/api/v1/idps", _catalog_list("idps", IDPS, q_fields=("name",), param_fields={"type": "type"}),
          methods=["GET"]),
    Route("/api/v1/idps/{idp_id}", _catalog_get("idps", "idp_id"), methods=["GET"]),
    Route("/api/v1/authorizationServers",
          _catalog_list("authorization_servers", AUTH_SERVERS, q_fields=("name", "audiences")), methods=["GET"]),
    Route("/api/v1/authorizationServers/{server_id}", _catalog_get("authorization_servers", "server_id"),
          methods=["GET"]),
    Route("/api/v1/trustedOrigins",
          _catalog_list("trusted_origins", TRUSTED_ORIGINS, q_fields=("name", "origin"),
                        filter_grammar=TRUSTED_ORIGIN_FILTER),
          methods=["GET"]),
    Route("/api/v1/trustedOrigins/{origin_id}", _catalog_get("trusted_origins", "origin_id"), methods=["GET"]),
]
