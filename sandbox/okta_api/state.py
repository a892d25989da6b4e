"""The stand-in org's state and the rules that change it (lifecycle, memberships, System Log)."""

from __future__ import annotations

import bisect
import copy
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from .errors import OktaError, not_found, random_token, validation_failed
from .expressions import Expression, dotted, evaluate
from .recordings import ORIGIN_PLACEHOLDER

Document = dict[str, Any]

ORIGIN = ORIGIN_PLACEHOLDER

# Families served read-only, as recorded: family -> the Okta type named in their 404 errors
CATALOG_FAMILIES: dict[str, str] = {
    "zones": "NetworkZone",
    "authenticators": "Authenticator",
    "devices": "Device",
    "device_assurances": "DeviceAssurance",
    "idps": "IdpAppInstance",
    "authorization_servers": "AuthorizationServer",
    "trusted_origins": "TrustedOrigin",
    "group_rules": "GroupRule",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def okta_time(moment: datetime) -> str:
    """Okta's timestamp format: 2020-08-27T18:14:15.000Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RequestContext:
    """Where a change came from, for the System Log event it produces."""

    ip_address: str = "127.0.0.1"
    user_agent: str = "unknown"
    request_id: str = ""
    request_uri: str = ""


@dataclass
class Page:
    items: list[Document]
    next_after: str | None


def paginate(
    items: list[Document],
    keys: list[str],
    after: str | None,
    limit: int | None,
    descending: bool = False,
) -> Page:
    """Okta-style cursor paging: `after` is the key of the last item of the previous page.

    `keys[i]` is the cursor key of `items[i]`; items are sorted by key (descending when
    `descending`), which keeps a cursor valid even if the item it names has since gone.
    `limit=None` returns everything.
    """
    start = 0
    if after:
        if descending:
            start = next((index for index, value in enumerate(keys) if value < after), len(keys))
        else:
            start = bisect.bisect_right(keys, after)
    end = len(items) if limit is None else start + limit
    chunk = items[start:end]
    next_after = keys[end - 1] if end < len(items) and chunk else None
    return Page(chunk, next_after)


def _user_display_name(user: Document) -> str:
    profile = user["profile"]
    return " ".join(part for part in (profile.get("firstName"), profile.get("lastName")) if part)


@dataclass
class State:
    org_name: str
    principal_user_id: str
    users: dict[str, Document] = field(default_factory=dict)
    user_order: list[str] = field(default_factory=list)
    login_index: dict[str, str] = field(default_factory=dict)
    users_with_password: set[str] = field(default_factory=set)
    groups: dict[str, Document] = field(default_factory=dict)
    memberships: dict[str, set[str]] = field(default_factory=dict)  # group id -> user ids
    apps: dict[str, Document] = field(default_factory=dict)
    app_users: dict[str, dict[str, Document]] = field(default_factory=dict)  # app -> user -> AppUser
    app_groups: dict[str, dict[str, Document]] = field(default_factory=dict)  # app -> group -> assignment
    policies: dict[str, Document] = field(default_factory=dict)
    policy_rules: dict[str, dict[str, Document]] = field(default_factory=dict)  # policy -> rule id -> rule
    factors: dict[str, list[Document]] = field(default_factory=dict)  # user id -> factors
    user_roles: dict[str, list[Document]] = field(default_factory=dict)
    group_roles: dict[str, list[Document]] = field(default_factory=dict)
    catalog: dict[str, dict[str, Document]] = field(default_factory=dict)  # family -> id -> object
    log_events: list[Document] = field(default_factory=list)  # ascending by `published`
    log_keys: list[str] = field(default_factory=list)  # paging cursor per event, same order

    # ----------------------------------------------------------------- indexes
    def add_user(self, user: Document, has_password: bool = True) -> None:
        self.users[user["id"]] = user
        self.login_index[user["profile"]["login"].lower()] = user["id"]
        if has_password:
            self.users_with_password.add(user["id"])

    def finish_loading(self) -> None:
        """Sort what paging relies on, once seeding is done."""
        self.user_order = sorted(self.users)
        for family in CATALOG_FAMILIES:
            self.catalog.setdefault(family, {})
        self.log_events.sort(key=lambda event: event["published"])
        self.log_keys = [f"{index:012d}" for index in range(1, len(self.log_events) + 1)]

    # ----------------------------------------------------------------- lookups
    def user(self, id_or_login: str) -> Document:
        user_id = id_or_login if id_or_login in self.users else self.login_index.get(id_or_login.lower())
        if user_id is None:
            raise not_found(id_or_login, "User")
        return self.users[user_id]

    def group(self, group_id: str) -> Document:
        if group_id not in self.groups:
            raise not_found(group_id, "UserGroup")
        return self.groups[group_id]

    def app(self, app_id: str) -> Document:
        if app_id not in self.apps:
            raise not_found(app_id, "AppInstance")
        return self.apps[app_id]

    def policy(self, policy_id: str) -> Document:
        if policy_id not in self.policies:
            raise not_found(policy_id, "Policy")
        return self.policies[policy_id]

    def policy_rule(self, policy_id: str, rule_id: str) -> Document:
        rules = self.policy_rules.get(self.policy(policy_id)["id"], {})
        if rule_id not in rules:
            raise not_found(rule_id, "PolicyRule")
        return rules[rule_id]

    def catalog_item(self, family: str, item_id: str) -> Document:
        items = self.catalog[family]
        if item_id not in items:
            raise not_found(item_id, CATALOG_FAMILIES[family])
        return items[item_id]

    def catalog_items(self, family: str) -> list[Document]:
        return [self.catalog[family][key] for key in sorted(self.catalog[family])]

    def user_group_ids(self, user_id: str) -> list[str]:
        return sorted(group_id for group_id, members in self.memberships.items() if user_id in members)

    def app_ids_for_user(self, user_id: str) -> list[str]:
        group_ids = set(self.user_group_ids(user_id))
        return sorted(
            app_id
            for app_id in self.apps
            if user_id in self.app_users.get(app_id, {}) or group_ids & set(self.app_groups.get(app_id, {}))
        )

    def app_ids_for_group(self, group_id: str) -> list[str]:
        return sorted(app_id for app_id, groups in self.app_groups.items() if group_id in groups)

    # ----------------------------------------------------------------- queries
    def find_users(
        self,
        q: str | None = None,
        filter_expression: Expression | None = None,
        search_expression: Expression | None = None,
        filter_mentions_status: bool = False,
        after: str | None = None,
    ) -> Iterator[Document]:
        """Users in id order (past the `after` cursor), as `GET /api/v1/users` selects them.

        Lazy, so that paging through 10,000 users reads one page at a time. Like Okta, a plain
        listing (or `q`, or a filter that does not name `status`) leaves out DEPROVISIONED users;
        `search` sees every user.
        """
        hide_deprovisioned = search_expression is None and not filter_mentions_status
        needle = q.lower() if q else None
        start = bisect.bisect_right(self.user_order, after) if after else 0
        for user_id in itertools.islice(self.user_order, start, None):
            user = self.users[user_id]
            if hide_deprovisioned and user["status"] == "DEPROVISIONED":
                continue
            if needle is not None:
                profile = user["profile"]
                fields = (profile.get(name) or "" for name in ("firstName", "lastName", "email", "login"))
                if not any(value.lower().startswith(needle) for value in fields):
                    continue
            expression = search_expression or filter_expression
            if expression is not None and not evaluate(expression, lambda attribute: dotted(user, attribute)):
                continue
            yield user

    def find_groups(self, q: str | None, expression: Expression | None) -> list[Document]:
        needle = q.lower() if q else None
        selected = []
        for group_id in sorted(self.groups):
            group = self.groups[group_id]
            if needle is not None and not group["profile"]["name"].lower().startswith(needle):
                continue
            if expression is not None and not evaluate(expression, lambda attribute: dotted(group, attribute)):
                continue
            selected.append(group)
        return selected

    def find_apps(self, q: str | None, expression: Expression | None) -> list[Document]:
        needle = q.lower() if q else None
        selected = []
        for app_id in sorted(self.apps):
            app = self.apps[app_id]
            if needle is not None and not (
                app.get("label", "").lower().startswith(needle) or app.get("name", "").lower().startswith(needle)
            ):
                continue
            if expression is not None and not evaluate(expression, lambda attr: self._app_attribute(app, attr)):
                continue
            selected.append(app)
        return selected

    def _app_attribute(self, app: Document, attribute: str) -> list[Any]:
        if attribute == "user.id":
            users = set(self.app_users.get(app["id"], {}))
            for group_id in self.app_groups.get(app["id"], {}):
                users |= self.memberships.get(group_id, set())
            return sorted(users)
        if attribute == "group.id":
            return sorted(self.app_groups.get(app["id"], {}))
        return dotted(app, attribute)

    def app_user_assignments(self, app_id: str) -> list[Document]:
        """Direct assignments (scope USER) plus users who get the app through a group (scope GROUP)."""
        app = self.app(app_id)
        assignments = {user_id: doc for user_id, doc in self.app_users.get(app_id, {}).items()}
        for group_id, group_assignment in self.app_groups.get(app_id, {}).items():
            for user_id in self.memberships.get(group_id, set()):
                if user_id not in assignments:
                    assignments[user_id] = self._group_app_user(app, self.users[user_id], group_assignment)
        return [assignments[user_id] for user_id in sorted(assignments)]

    @staticmethod
    def _group_app_user(app: Document, user: Document, group_assignment: Document) -> Document:
        return {
            "id": user["id"],
            "created": group_assignment["lastUpdated"],
            "lastUpdated": group_assignment["lastUpdated"],
            "scope": "GROUP",
            "status": "ACTIVE" if user["status"] != "DEPROVISIONED" else "INACTIVE",
            "statusChanged": group_assignment["lastUpdated"],
            "syncState": "DISABLED",
            "credentials": {"userName": user["profile"]["login"]},
            "profile": {},
            "_links": {
                "app": {"href": f"{ORIGIN}/api/v1/apps/{app['id']}"},
                "user": {"href": f"{ORIGIN}/api/v1/users/{user['id']}"},
                "group": {"href": f"{ORIGIN}/api/v1/groups/{group_assignment['id']}", "name": "group"},
            },
        }

    def app_links(self, user_id: str) -> list[Document]:
        links = []
        for order, app_id in enumerate(self.app_ids_for_user(user_id)):
            app = self.apps[app_id]
            if app.get("status") != "ACTIVE" or (app.get("visibility") or {}).get("hide", {}).get("web"):
                continue
            app_link_hrefs = (app.get("_links") or {}).get("appLinks") or []
            logos = (app.get("_links") or {}).get("logo") or []
            links.append(
                {
                    "id": "00a" + app_id[3:],
                    "appAssignmentId": "0ua" + user_id[3:13] + app_id[-7:],
                    "appInstanceId": app_id,
                    "appName": app.get("name", ""),
                    "credentialsSetup": False,
                    "hidden": False,
                    "label": app.get("label", ""),
                    "linkUrl": (
                        app_link_hrefs[0]["href"] if app_link_hrefs else f"{ORIGIN}/home/{app.get('name')}/{app_id}"
                    ),
                    "logoUrl": logos[0]["href"] if logos else f"{ORIGIN}/img/logos/default.png",
                    "sortOrder": order,
                }
            )
        return links

    def roles_for_user(self, user_id: str) -> list[Document]:
        roles = list(self.user_roles.get(user_id, []))
        for group_id in self.user_group_ids(user_id):
            roles.extend(self.group_roles.get(group_id, []))
        return roles

    def find_log_events(
        self,
        since: datetime,
        until: datetime,
        expression: Expression | None,
        keywords: list[str],
        descending: bool,
    ) -> tuple[list[Document], list[str]]:
        """Matching events and their paging keys, in the requested order."""
        since_text, until_text = okta_time(since), okta_time(until)
        events, keys = [], []
        for event, key in zip(self.log_events, self.log_keys):
            if not since_text <= event["published"] < until_text:
                continue
            if expression is not None and not evaluate(expression, lambda attribute: dotted(event, attribute)):
                continue
            if keywords:
                haystack = repr(event).lower()
                if not all(keyword in haystack for keyword in keywords):
                    continue
            events.append(event)
            keys.append(key)
        if descending:
            events.reverse()
            keys.reverse()
        return events, keys

    # ----------------------------------------------------------------- rendering
    def render_user(self, user: Document, detail: bool) -> Document:
        """A user as Okta returns it: in a collection the links hold only `self`."""
        document = copy.copy(user)
        base = f"{ORIGIN}/api/v1/users/{user['id']}"
        links: Document = {"self": {"href": base}}
        if detail:
            links["schema"] = {"href": f"{ORIGIN}/api/v1/meta/schemas/user/osc1sandbox0000000001"}
            links["type"] = {"href": f"{ORIGIN}/api/v1/meta/types/user/{user['type']['id']}"}
            for name, action in _USER_LIFECYCLE_LINKS.get(user["status"], ()):
                links[name] = {"href": f"{base}/lifecycle/{action}", "method": "POST"}
            if user["status"] not in ("DEPROVISIONED", "STAGED"):
                links["changePassword"] = {"href": f"{base}/credentials/change_password", "method": "POST"}
                links["changeRecoveryQuestion"] = {
                    "href": f"{base}/credentials/change_recovery_question",
                    "method": "POST",
                }
        document["_links"] = links
        return document

    def render_group(self, group: Document, with_stats: bool = False) -> Document:
        document = copy.copy(group)
        if with_stats:
            document["_embedded"] = {
                "stats": {
                    "usersCount": len(self.memberships.get(group["id"], ())),
                    "appsCount": len(self.app_ids_for_group(group["id"])),
                    "groupPushMappingsCount": 0,
                }
            }
        return document

    # ----------------------------------------------------------------- changes
    def change_user_status(
        self, id_or_login: str, action: str, context: RequestContext, send_email: bool = True
    ) -> Document:
        """Apply a lifecycle operation with Okta's transition rules; returns the response body."""
        if action not in _LIFECYCLE_RULES:
            raise OktaError(404, "E0000022", "The endpoint does not support the provided HTTP method")
        user = self.user(id_or_login)
        rule = _LIFECYCLE_RULES[action]
        current = user["status"]
        if current not in rule.allowed_from:
            if action == "activate" and current == "ACTIVE":
                raise OktaError(403, "E0000016", "Activation failed because the user is already active")
            raise validation_failed(rule.operation_id, [rule.refusal])

        now = okta_time(utcnow())
        target = rule.target(current, user["id"] in self.users_with_password)
        if target != current:
            user["status"] = target
            user["statusChanged"] = now
            if target == "ACTIVE" and action == "activate":
                user["activated"] = now
        user["lastUpdated"] = now
        if action == "reset_factors":
            self.factors[user["id"]] = []
        self.record_event(
            rule.event_type,
            rule.display_message,
            [self.user_target(user)],
            context,
            legacy_event_type=rule.legacy_event_type,
        )
        if action == "activate" and not send_email:
            token = random_token(20)
            return {"activationUrl": f"{ORIGIN}/welcome/{token}", "activationToken": token}
        return {}

    def clear_sessions(self, id_or_login: str, context: RequestContext) -> None:
        user = self.user(id_or_login)
        self.record_event(
            "user.session.clear",
            "Clear user session",
            [self.user_target(user)],
            context,
            legacy_event_type="core.user.session.clear",
        )

    def set_membership(self, group_id: str, id_or_login: str, member: bool, context: RequestContext) -> None:
        group = self.group(group_id)
        user = self.user(id_or_login)
        if group.get("type") != "OKTA_GROUP":
            raise OktaError(
                403,
                "E0000006",
                "You do not have permission to perform the requested action",
                [f"Memberships of {group.get('type')} groups cannot be changed through this API."],
            )
        members = self.memberships.setdefault(group["id"], set())
        if (user["id"] in members) == member:
            return  # idempotent: Okta answers 204 and logs nothing
        if member:
            members.add(user["id"])
        else:
            members.discard(user["id"])
        group["lastMembershipUpdated"] = okta_time(utcnow())
        verb = "add" if member else "remove"
        self.record_event(
            f"group.user_membership.{verb}",
            f"{'Add' if member else 'Remove'} user {'to' if member else 'from'} group membership",
            [self.user_target(user), self.group_target(group)],
            context,
            legacy_event_type=f"core.user_group_member.user_{verb}",
        )

    # ----------------------------------------------------------------- System Log
    def principal(self) -> Document:
        """The API token acts as the admin who created it."""
        user = self.users[self.principal_user_id]
        return {
            "id": user["id"],
            "type": "User",
            "alternateId": user["profile"]["login"],
            "displayName": _user_display_name(user),
        }

    def user_target(self, user: Document) -> Document:
        return {
            "id": user["id"],
            "type": "User",
            "alternateId": user["profile"]["login"],
            "displayName": _user_display_name(user),
        }

    def group_target(self, group: Document) -> Document:
        return {
            "id": group["id"],
            "type": "UserGroup",
            "alternateId": "unknown",
            "displayName": group["profile"]["name"],
        }

    def record_event(
        self,
        event_type: str,
        display_message: str,
        targets: Iterable[Document],
        context: RequestContext,
        *,
        actor: Document | None = None,
        outcome: str = "SUCCESS",
        reason: str | None = None,
        severity: str = "INFO",
        legacy_event_type: str | None = None,
        published: datetime | None = None,
    ) -> Document:
        event = build_log_event(
            event_type,
            display_message,
            actor or self.principal(),
            list(targets),
            context,
            outcome=outcome,
            reason=reason,
            severity=severity,
            legacy_event_type=legacy_event_type,
            published=published or utcnow(),
        )
        # Live events are "now", so appending keeps time order; back-dated seed history is
        # re-sorted (and re-keyed) by finish_loading().
        self.log_events.append(event)
        self.log_keys.append(f"{len(self.log_keys) + 1:012d}")
        return event


def build_log_event(
    event_type: str,
    display_message: str,
    actor: Document,
    targets: list[Document],
    context: RequestContext,
    *,
    outcome: str,
    reason: str | None,
    severity: str,
    legacy_event_type: str | None,
    published: datetime,
) -> Document:
    outcome_doc: Document = {"result": outcome}
    if reason:
        outcome_doc["reason"] = reason
    geo = {"city": "San Francisco", "state": "California", "country": "United States", "postalCode": "94105",
           "geolocation": {"lat": 37.7852, "lon": -122.3874}}
    transaction_id = context.request_id or random_token(27)
    event: Document = {
        "uuid": str(uuid.uuid4()),
        "published": okta_time(published),
        "eventType": event_type,
        "version": "0",
        "severity": severity,
        "displayMessage": display_message,
        "actor": actor,
        "client": {
            "userAgent": {"rawUserAgent": context.user_agent, "os": "Unknown", "browser": "UNKNOWN"},
            "zone": "null",
            "device": "Unknown",
            "ipAddress": context.ip_address,
            "geographicalContext": geo,
        },
        "authenticationContext": {"authenticationStep": 0, "externalSessionId": "trs" + transaction_id[:22]},
        "outcome": outcome_doc,
        "securityContext": {},
        "debugContext": {"debugData": {"requestId": transaction_id, "requestUri": context.request_uri,
                                       "url": context.request_uri}},
        "transaction": {"type": "WEB", "id": transaction_id, "detail": {}},
        "request": {"ipChain": [{"ip": context.ip_address, "version": "V4", "geographicalContext": geo}]},
        "target": targets,
    }
    if legacy_event_type:
        event["legacyEventType"] = legacy_event_type
    return event


@dataclass(frozen=True)
class _LifecycleRule:
    operation_id: str
    allowed_from: frozenset[str]
    refusal: str
    event_type: str
    legacy_event_type: str
    display_message: str
    target: Callable[[str, bool], str]


_ALL_STATUSES = frozenset(
    {"ACTIVE", "DEPROVISIONED", "LOCKED_OUT", "PASSWORD_EXPIRED", "PROVISIONED", "RECOVERY", "STAGED", "SUSPENDED"}
)

_LIFECYCLE_RULES: dict[str, _LifecycleRule] = {
    "activate": _LifecycleRule(
        "activateUser", frozenset({"STAGED", "DEPROVISIONED"}),
        "Only STAGED or DEPROVISIONED users can be activated.",
        "user.lifecycle.activate", "core.user.config.user_activated", "Activate Okta user",
        lambda _current, has_password: "ACTIVE" if has_password else "PROVISIONED",
    ),
    "deactivate": _LifecycleRule(
        "deactivateUser", _ALL_STATUSES - {"DEPROVISIONED"},
        "The user is already deactivated.",
        "user.lifecycle.deactivate", "core.user.config.user_deactivated", "Deactivate Okta user",
        lambda _current, _pw: "DEPROVISIONED",
    ),
    "suspend": _LifecycleRule(
        "suspendUser", frozenset({"ACTIVE"}),
        "Cannot suspend a user that is not active.",
        "user.lifecycle.suspend", "core.user.config.user_suspended", "Suspend Okta user",
        lambda _current, _pw: "SUSPENDED",
    ),
    "unsuspend": _LifecycleRule(
        "unsuspendUser", frozenset({"SUSPENDED"}),
        "Cannot unsuspend a user that is not suspended.",
        "user.lifecycle.unsuspend", "core.user.config.user_unsuspended", "Unsuspend Okta user",
        lambda _current, _pw: "ACTIVE",
    ),
    # Okta's contract: unlock also applies to ACTIVE users (clears unknown-device blocks).
    "unlock": _LifecycleRule(
        "unlockUser", frozenset({"LOCKED_OUT", "ACTIVE"}),
        "Cannot unlock a user that is not locked out.",
        "user.account.unlock_by_admin", "core.user.account.unlock_by_admin", "Unlock user account by admin",
        lambda _current, _pw: "ACTIVE",
    ),
    "reset_factors": _LifecycleRule(
        "resetFactors", _ALL_STATUSES - {"DEPROVISIONED", "STAGED"},
        "Factors cannot be reset for a user in this status.",
        "user.mfa.factor.reset_all", "core.user.factor.reset_all", "Reset all factors for user",
        lambda current, _pw: current,
    ),
}

# status -> (link name, lifecycle action) that Okta advertises on a single user
_USER_LIFECYCLE_LINKS: dict[str, tuple[tuple[str, str], ...]] = {
    "ACTIVE": (("suspend", "suspend"), ("resetPassword", "reset_password"),
               ("expirePassword", "expire_password"), ("deactivate", "deactivate")),
    "SUSPENDED": (("unsuspend", "unsuspend"), ("deactivate", "deactivate")),
    "LOCKED_OUT": (("unlock", "unlock"), ("resetPassword", "reset_password"), ("deactivate", "deactivate")),
    "STAGED": (("activate", "activate"), ("deactivate", "deactivate")),
    "PROVISIONED": (("reactivate", "reactivate"), ("deactivate", "deactivate")),
    "DEPROVISIONED": (("activate", "activate"),),
    "PASSWORD_EXPIRED": (("resetPassword", "reset_password"), ("deactivate", "deactivate")),
    "RECOVERY": (("resetPassword", "reset_password"), ("deactivate", "deactivate")),
}
