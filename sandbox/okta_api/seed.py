"""Build the stand-in's initial state.

Core: the demo org file (`sandbox/org.json`): its users and groups exist exactly with those ids,
statuses and memberships. Enrichment: a few objects of each family taken from Okta's recorded
responses (apps, policies and rules, zones, authenticators, devices, device assurance policies,
identity providers, authorization servers, trusted origins, group rules, factors), plus role
assignments and a short System Log history shaped like Okta's. `extra_users` adds synthetic users.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

from .recordings import REPO_ROOT, default_reference_dir, recorded_objects
from .state import CATALOG_FAMILIES, ORIGIN, Document, RequestContext, State, okta_time, utcnow

DEFAULT_ORG_FILE = REPO_ROOT / "sandbox" / "org.json"

USER_TYPE_ID = "oty1sandboxdefault01"
CREATED = datetime.fromisoformat("2024-03-04T16:20:00+00:00")

# How many recorded objects to keep per family: (kind of object, how many per kind, how many in all)
_SELECTION: dict[str, tuple[Callable[[Document], Any], int, int]] = {
    "apps": (lambda app: app.get("signOnMode"), 2, 12),
    "zones": (lambda zone: zone.get("name"), 1, 6),
    "authenticators": (lambda authenticator: authenticator.get("key"), 1, 12),
    "devices": (lambda device: (device.get("profile") or {}).get("platform"), 4, 6),
    "device_assurances": (lambda policy: policy.get("platform"), 2, 6),
    "idps": (lambda idp: idp.get("type"), 2, 6),
    "authorization_servers": (lambda server: server.get("name"), 1, 6),
    "trusted_origins": (lambda origin: origin.get("name"), 3, 6),
    "group_rules": (lambda rule: rule.get("type"), 6, 6),
    "policies": (lambda policy: policy.get("type"), 4, 16),
}

_FIRST_NAMES = ("Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jordan", "Kendall", "Logan",
                "Morgan", "Parker", "Quinn", "Reese", "Rowan", "Sawyer", "Taylor", "Skyler", "Riley", "Peyton")
_LAST_NAMES = ("Nguyen", "Garcia", "Smith", "Johnson", "Kim", "Patel", "Brown", "Lopez", "Martin", "Clark",
               "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams")


@dataclass(frozen=True)
class SeedOptions:
    org_file: Path = DEFAULT_ORG_FILE
    reference_dir: Path = field(default_factory=default_reference_dir)
    extra_users: int = 0


def build_state(options: SeedOptions, now: datetime | None = None) -> State:
    now = now or utcnow()
    org = json.loads(options.org_file.read_text(encoding="utf-8"))
    recorded = recorded_objects(options.reference_dir)

    state = State(org_name=org.get("org_name", "Sandbox org"), principal_user_id="")
    _seed_groups(state, org["groups"], recorded["groups"])
    _seed_org_users(state, org["users"], now)
    _seed_extra_users(state, options.extra_users, _email_domain(org["users"]))
    state.principal_user_id = _principal(org)
    org_user_ids = [user["id"] for user in org["users"]]

    adopt = _Adopter(state)
    for family in CATALOG_FAMILIES:
        kind, per_kind, limit = _SELECTION[family]
        chosen = _pick(recorded[family], kind, per_kind, limit, first=_is_default)
        state.catalog[family] = {item["id"]: adopt(item) for item in chosen}
    _seed_apps(state, recorded["apps"], org_user_ids, adopt)
    _seed_policies(state, recorded["policies"], recorded["policy_rules"], adopt)
    _seed_factors(state, recorded["user_factors"], org_user_ids, adopt)
    _seed_roles(state, recorded["group_roles"] + recorded["user_roles"], org["groups"])
    _seed_history(state, org_user_ids, now)
    state.finish_loading()
    return state


# --------------------------------------------------------------------------- users and groups
def _email_domain(users: list[Document]) -> str:
    return users[0]["login"].split("@", 1)[1] if users and "@" in users[0]["login"] else "example.com"


def _seed_groups(state: State, groups: list[Document], recorded_groups: list[Document]) -> None:
    logos = next((g["_links"]["logo"] for g in recorded_groups if (g.get("_links") or {}).get("logo")), [])
    for index, spec in enumerate(groups):
        created = okta_time(CREATED + timedelta(minutes=index))
        group_id = spec["id"]
        state.groups[group_id] = {
            "id": group_id,
            "created": created,
            "lastUpdated": created,
            "lastMembershipUpdated": created,
            "objectClass": ["okta:user_group"],
            "type": spec.get("type", "OKTA_GROUP"),
            "profile": {"name": spec["name"], "description": spec.get("description", "")},
            "_links": {
                "logo": copy.deepcopy(logos),
                "users": {"href": f"{ORIGIN}/api/v1/groups/{group_id}/users"},
                "apps": {"href": f"{ORIGIN}/api/v1/groups/{group_id}/apps"},
            },
        }
        state.memberships[group_id] = set()


def _user_document(user_id: str, profile: Document, status: str, created: datetime, last_login: str | None) -> Document:
    """A user shaped like the ones in Okta's recordings (the routes add `_links`)."""
    created_text = okta_time(created)
    return {
        "id": user_id,
        "status": status,
        "created": created_text,
        "activated": created_text if status not in ("STAGED", "PROVISIONED") else None,
        "statusChanged": created_text,
        "lastLogin": last_login,
        "lastUpdated": created_text,
        "passwordChanged": created_text,
        "type": {"id": USER_TYPE_ID},
        "profile": {
            "firstName": profile["firstName"],
            "lastName": profile["lastName"],
            "mobilePhone": None,
            "secondEmail": None,
            "login": profile["login"],
            "email": profile["email"],
        },
        "credentials": {
            "password": {},
            "emails": [{"value": profile["email"], "status": "VERIFIED", "type": "PRIMARY"}],
            "provider": {"type": "OKTA", "name": "OKTA"},
        },
    }


def _seed_org_users(state: State, users: list[Document], now: datetime) -> None:
    groups_by_name = {group["profile"]["name"]: group_id for group_id, group in state.groups.items()}
    for index, spec in enumerate(users):
        last_login = okta_time(now - timedelta(hours=2 + 5 * index)) if spec["status"] != "STAGED" else None
        user = _user_document(spec["id"], spec, spec["status"], CREATED + timedelta(days=1, hours=index), last_login)
        state.add_user(user, has_password=bool(spec.get("password")))
        for name in spec.get("groups", []):
            if name not in groups_by_name:
                raise ValueError(f"org file: user {spec['id']} is in unknown group {name!r}")
            state.memberships[groups_by_name[name]].add(spec["id"])


def _seed_extra_users(state: State, count: int, domain: str) -> None:
    everyone = next((gid for gid, group in state.groups.items() if group["type"] == "BUILT_IN"), None)
    for number in range(1, count + 1):
        user_id = f"00u{number:017d}"
        first = _FIRST_NAMES[number % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(number // len(_FIRST_NAMES)) % len(_LAST_NAMES)]
        login = f"user{number:05d}@{domain}"
        profile = {"firstName": first, "lastName": last, "login": login, "email": login}
        created = CREATED + timedelta(days=2, seconds=number)
        state.add_user(_user_document(user_id, profile, "ACTIVE", created, None))
        if everyone:
            state.memberships[everyone].add(user_id)


def _principal(org: Document) -> str:
    """The API token belongs to the first member of an admin group (else the first user)."""
    for group in org["groups"]:
        if "admin" in group["name"].lower():
            members = [user["id"] for user in org["users"] if group["name"] in user.get("groups", [])]
            if members:
                return members[0]
    return org["users"][0]["id"]


# --------------------------------------------------------------------------- recorded objects
def _recency(item: Document) -> str:
    return str(item.get("lastUpdated") or item.get("lastUpdate") or item.get("created") or "")


def _is_default(item: Document) -> bool:
    return bool(item.get("system")) or item.get("name") == "default"


def _pick(
    items: list[Document],
    kind: Callable[[Document], Any],
    per_kind: int,
    limit: int,
    first: Callable[[Document], bool] = lambda _item: False,
) -> list[Document]:
    """A varied, deterministic handful: round-robin over kinds, newest first within a kind."""
    ordered = sorted(items, key=lambda i: (first(i), _recency(i), i["id"]), reverse=True)
    by_kind: dict[str, list[Document]] = defaultdict(list)
    for item in ordered:
        by_kind[str(kind(item))].append(item)
    chosen: list[Document] = []
    for round_items in itertools.zip_longest(*(bucket[:per_kind] for bucket in by_kind.values())):
        chosen.extend(item for item in round_items if item is not None)
    return chosen[:limit]


def _without_nulls(value: Any) -> Any:
    """Okta's live responses carry nulls where its published contract allows none (for example
    `accessibility.errorRedirectUrl`, `resourceAlternateId`, `policy.subject.filter`), and Prism
    rejects them. An absent property means the same to clients and the SDK, so drop them."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


# Sign-on modes the contract's Application schema knows; others (e.g. MFA_AS_SERVICE) are left out.
CONTRACT_SIGN_ON_MODES = frozenset({"AUTO_LOGIN", "BASIC_AUTH", "BOOKMARK", "BROWSER_PLUGIN", "OPENID_CONNECT",
                                    "SAML_1_1", "SAML_2_0", "SECURE_PASSWORD_STORE", "WS_FEDERATION"})
# Apps the okta SDK (3.4.6) cannot parse although they satisfy the contract: its BrowserPluginApplication
# model requires the template_swa settings (buttonField, passwordField, url, ...), which the
# three-field SWA template does not have, and one such app fails a whole list_applications call.
SDK_UNPARSEABLE_APP_NAMES = frozenset({"template_swa3field"})


class _Adopter:
    """Make a recorded object ours. Recorded objects point at users and groups of the recorded
    orgs: foreign user ids become the API token's admin, foreign group ids are spread over the
    org's OKTA_GROUP groups (deterministically). Nulls the contract forbids are dropped.
    """

    _USER_ID = re.compile(r"(?<![A-Za-z0-9])00u[A-Za-z0-9]{17}(?![A-Za-z0-9])")
    _GROUP_ID = re.compile(r"(?<![A-Za-z0-9])00g[A-Za-z0-9]{17}(?![A-Za-z0-9])")

    def __init__(self, state: State) -> None:
        self.state = state
        self.okta_groups = sorted(gid for gid, group in state.groups.items() if group["type"] == "OKTA_GROUP")
        self.group_map: dict[str, str] = {}

    def _group(self, match: re.Match[str]) -> str:
        foreign = match.group(0)
        if foreign in self.state.groups or not self.okta_groups:
            return foreign
        if foreign not in self.group_map:
            self.group_map[foreign] = self.okta_groups[len(self.group_map) % len(self.okta_groups)]
        return self.group_map[foreign]

    def _user(self, match: re.Match[str]) -> str:
        foreign = match.group(0)
        return foreign if foreign in self.state.users else self.state.principal_user_id

    def __call__(self, item: Document) -> Document:
        text = json.dumps(item)
        text = self._GROUP_ID.sub(self._group, self._USER_ID.sub(self._user, text))
        return _without_nulls(json.loads(text))


def _seed_apps(state: State, recorded_apps: list[Document], org_user_ids: list[str], adopt: _Adopter) -> None:
    kind, per_kind, limit = _SELECTION["apps"]
    usable = [
        app
        for app in recorded_apps
        if app.get("signOnMode") in CONTRACT_SIGN_ON_MODES and app.get("name") not in SDK_UNPARSEABLE_APP_NAMES
    ]
    for app in _pick(usable, kind, per_kind, limit):
        state.apps[app["id"]] = adopt(app)
        state.app_users[app["id"]] = {}
        state.app_groups[app["id"]] = {}

    active = sorted((app for app in state.apps.values() if app.get("status") == "ACTIVE"), key=lambda a: a["id"])
    if not active:
        return
    groups = {group["profile"]["name"]: group_id for group_id, group in state.groups.items()}
    # group name -> indexes into the active apps; wraps around when few apps were recorded
    plan = {"Everyone": (0, 1), "Identity Admins": (2,), "Helpdesk": (3,), "Contractors": (4,)}
    for name, indexes in plan.items():
        if name not in groups:
            continue
        for priority, index in enumerate(indexes):
            app = active[index % len(active)]
            state.app_groups[app["id"]][groups[name]] = _app_group_assignment(app, groups[name], priority)
    for position, user_id in enumerate(org_user_ids[:2]):
        app = active[(5 + position) % len(active)]
        state.app_users[app["id"]][user_id] = _app_user(app, state.users[user_id])


def _app_group_assignment(app: Document, group_id: str, priority: int) -> Document:
    app_href = f"{ORIGIN}/api/v1/apps/{app['id']}"
    return {
        "id": group_id,
        "lastUpdated": okta_time(CREATED + timedelta(days=3)),
        "priority": priority,
        "profile": {},
        "_links": {
            "app": {"href": app_href},
            "self": {"href": f"{app_href}/groups/{group_id}"},
            "group": {"href": f"{ORIGIN}/api/v1/groups/{group_id}"},
        },
    }


def _app_user(app: Document, user: Document) -> Document:
    when = okta_time(CREATED + timedelta(days=3, hours=1))
    return {
        "id": user["id"],
        "created": when,
        "lastUpdated": when,
        "scope": "USER",
        "status": "ACTIVE",
        "statusChanged": when,
        "syncState": "DISABLED",
        "credentials": {"userName": user["profile"]["login"]},
        "profile": {},
        "_links": {
            "app": {"href": f"{ORIGIN}/api/v1/apps/{app['id']}"},
            "user": {"href": f"{ORIGIN}/api/v1/users/{user['id']}"},
        },
    }


def _rule_policy_id(rule: Document) -> str | None:
    match = re.search(r"/api/v1/policies/([^/]+)/rules/", json.dumps(rule.get("_links", {})))
    return match.group(1) if match else None


def _seed_policies(
    state: State, recorded_policies: list[Document], recorded_rules: list[Document], adopt: _Adopter
) -> None:
    by_id = {policy["id"]: policy for policy in recorded_policies}
    owners = {rule["id"]: _rule_policy_id(rule) for rule in recorded_rules}
    kind, per_kind, limit = _SELECTION["policies"]
    chosen = {p["id"]: p for p in _pick(recorded_policies, kind, per_kind, limit, first=_is_default)}
    for owner in owners.values():  # every recorded rule comes with its policy
        if owner in by_id:
            chosen.setdefault(owner, by_id[owner])
    for policy_id, policy in chosen.items():
        state.policies[policy_id] = adopt(policy)
        state.policy_rules[policy_id] = {}
    for rule in recorded_rules:
        owner = owners[rule["id"]]
        if owner in state.policy_rules:
            state.policy_rules[owner][rule["id"]] = adopt(rule)


def _seed_factors(
    state: State, recorded_factors: list[Document], org_user_ids: list[str], adopt: _Adopter
) -> None:
    """Give the recorded factor enrollments to the org's users, round-robin."""
    owners = [user_id for user_id in org_user_ids if state.users[user_id]["status"] != "DEPROVISIONED"]
    if not owners:
        return
    for index, factor in enumerate(sorted(recorded_factors, key=lambda f: f["id"])):
        owner = owners[index % len(owners)]
        recorded_user = re.search(r"/api/v1/users/([^/\"]+)", json.dumps(factor.get("_links", {})))
        text = json.dumps(factor)
        if recorded_user:
            text = text.replace(recorded_user.group(1), owner)
        enrolled = adopt(json.loads(text))
        # Enrolled factors of a demo org are ACTIVE; a pending one would carry an activate link.
        links = enrolled.get("_links", {})
        if enrolled.get("status") == "PENDING_ACTIVATION":
            enrolled["status"] = "ACTIVE"
            links.pop("activate", None)
        # Okta sends `resend` as a list (one per channel); the contract and the SDK want one link.
        if isinstance(links.get("resend"), list):
            links["resend"] = links["resend"][0]
        state.factors.setdefault(owner, []).append(enrolled)


_ROLE_LABELS = {
    "SUPER_ADMIN": "Super Administrator",
    "READ_ONLY_ADMIN": "Read-only Administrator",
    "HELP_DESK_ADMIN": "Help Desk Administrator",
    "USER_ADMIN": "Group Administrator",
}


def _seed_roles(state: State, recorded_roles: list[Document], groups: list[Document]) -> None:
    """Admin roles: the admin group gets SUPER_ADMIN, a help-desk/read-only group READ_ONLY_ADMIN."""
    template = next(iter(recorded_roles), {"status": "ACTIVE"})
    when = okta_time(CREATED + timedelta(days=1))
    for group in groups:
        description = f"{group['name']} {group.get('description', '')}".lower()
        role_type = "SUPER_ADMIN" if "admin" in group["name"].lower() else (
            "READ_ONLY_ADMIN" if "read-only" in description or "helpdesk" in description else None
        )
        if role_type is None:
            continue
        assignment = {
            "id": "ra1" + group["id"][3:],
            "label": _ROLE_LABELS[role_type],
            "type": role_type,
            "status": template.get("status", "ACTIVE"),
            "created": when,
            "lastUpdated": when,
            "assignmentType": "GROUP",
            "_links": {"assignee": {"href": f"{ORIGIN}/api/v1/groups/{group['id']}"}},
        }
        state.group_roles.setdefault(group["id"], []).append(assignment)


# --------------------------------------------------------------------------- System Log history
_BROWSER = RequestContext(
    ip_address="198.51.100.23",
    user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/127.0.0.0 Safari/537.36",
    request_uri="/idp/idx/identify",
)
_ADMIN_API = RequestContext(ip_address="203.0.113.10", user_agent="okta-sdk-python/3.4.6",
                            request_uri="/api/v1/groups")


def _seed_history(state: State, org_user_ids: list[str], now: datetime) -> None:
    """A few days of plausible events for the org's own users (not the synthetic ones)."""
    org_users = [state.users[user_id] for user_id in org_user_ids]
    for index, user in enumerate(org_users):
        actor = state.user_target(user)
        start = now - timedelta(days=3, hours=index * 3)
        if user["status"] == "LOCKED_OUT":
            for attempt in range(3):
                state.record_event(
                    "user.session.start", "User login to Okta", [], _BROWSER, actor=actor,
                    outcome="FAILURE", reason="INVALID_CREDENTIALS", severity="WARN",
                    legacy_event_type="core.user_auth.login_failed",
                    published=start + timedelta(minutes=attempt),
                )
            state.record_event(
                "user.account.lock", "Max sign in attempts exceeded", [actor], _BROWSER, actor=actor,
                outcome="FAILURE", reason="LOCKED_OUT", severity="WARN",
                legacy_event_type="core.user_auth.account_locked", published=start + timedelta(minutes=3),
            )
            continue
        if user["status"] in ("DEPROVISIONED", "SUSPENDED", "STAGED"):
            action = {"DEPROVISIONED": "deactivate", "SUSPENDED": "suspend", "STAGED": "create"}[user["status"]]
            state.record_event(
                f"user.lifecycle.{action}", f"{action.capitalize()} Okta user", [actor], _ADMIN_API,
                published=start,
            )
            continue
        for day in range(3):
            state.record_event(
                "user.session.start", "User login to Okta", [], _BROWSER, actor=actor,
                legacy_event_type="core.user_auth.login_success", published=start + timedelta(days=day),
            )
            state.record_event(
                "user.authentication.auth_via_mfa", "Authentication of user via MFA", [actor], _BROWSER,
                actor=actor, legacy_event_type="core.user.factor.attempt_success",
                published=start + timedelta(days=day, seconds=20),
            )
    for offset, (group_id, members) in enumerate(sorted(state.memberships.items())):
        group = state.groups[group_id]
        if group["type"] != "OKTA_GROUP":
            continue
        for user_id in sorted(members & set(org_user_ids)):
            state.record_event(
                "group.user_membership.add", "Add user to group membership",
                [state.user_target(state.users[user_id]), state.group_target(group)], _ADMIN_API,
                legacy_event_type="core.user_group_member.user_add",
                published=now - timedelta(days=5, minutes=-offset * 7),
            )


def iter_seed_summary(state: State) -> Iterable[str]:
    """Human-readable counts, printed at startup."""
    yield f"users={len(state.users)} groups={len(state.groups)} apps={len(state.apps)}"
    yield f"policies={len(state.policies)} rules={sum(len(r) for r in state.policy_rules.values())}"
    yield " ".join(f"{family}={len(items)}" for family, items in state.catalog.items())
    yield f"log_events={len(state.log_events)}"
