"""`okta_check`: can this server's Okta credential do what the tools need?

One cheap call proves the credential (a bad one is an error, not a report). Then, per tool, the
Okta scopes it needs: with an SSWS API token (which acts with its admin's permissions and has no
scopes) one read per scope is tried; writes are never tried, since trying means changing Okta.
With an OAuth service app (PrivateKey) the configured OKTA_API_SCOPES are compared with each
tool's scopes (a `.manage` scope covers its `.read`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from tools.okta import OktaError, okta_read
from tools.registry import REGISTRY

# scope -> (path, ids, query): one cheap read that needs exactly that scope.
PROBES: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "okta.users.read": ("/api/v1/users", (), {"limit": 1}),
    "okta.groups.read": ("/api/v1/groups", (), {"limit": 1}),
    "okta.apps.read": ("/api/v1/apps", (), {"limit": 1}),
    "okta.policies.read": ("/api/v1/policies", (), {"type": "OKTA_SIGN_ON", "limit": 1}),
    "okta.logs.read": ("/api/v1/logs", (), {"limit": 1}),
    "okta.networkZones.read": ("/api/v1/zones", (), {"limit": 1}),
    "okta.authenticators.read": ("/api/v1/authenticators", (), {}),
    "okta.devices.read": ("/api/v1/devices", (), {"limit": 1}),
    "okta.deviceAssurance.read": ("/api/v1/device-assurances", (), {}),
    "okta.idps.read": ("/api/v1/idps", (), {"limit": 1}),
    "okta.authorizationServers.read": ("/api/v1/authorizationServers", (), {"limit": 1}),
    "okta.trustedOrigins.read": ("/api/v1/trustedOrigins", (), {"limit": 1}),
}


class OktaCheckFailed(Exception):
    """The credential does not work at all: nothing per tool is worth reporting."""


@dataclass(frozen=True)
class ToolCheck:
    name: str
    access: str
    okta_scopes: tuple[str, ...]
    status: str
    """ok, missing scope, failing, not probed"""
    detail: str = ""


@dataclass(frozen=True)
class OktaCheckReport:
    org_url: str
    mode: str
    connection: str
    tools: tuple[ToolCheck, ...]

    @property
    def failing(self) -> list[ToolCheck]:
        return [t for t in self.tools if t.status in ("missing scope", "failing")]


def _covered(scope: str, granted: set[str]) -> bool:
    return scope in granted or (scope.endswith(".read") and scope[: -len(".read")] + ".manage" in granted)


async def okta_check(*, connect: bool = True) -> OktaCheckReport:
    mode = "SSWS API token" if settings.OKTA_API_TOKEN else "OAuth service app (PrivateKey)"
    connection = "not tried (--no-connect)"
    first_user = ""
    if connect:
        try:
            answer = await okta_read("/api/v1/users", query={"limit": 1})
        except OktaError as exc:
            if exc.status in (401, 403):
                raise OktaCheckFailed(f"Okta refused the configured credential ({mode}): {exc}") from None
            raise OktaCheckFailed(f"Okta could not be used at {settings.OKTA_ORG_URL}: {exc}") from None
        users = answer.body or []
        first_user = str(users[0].get("id", "")) if users and isinstance(users[0], dict) else ""
        connection = "ok (GET /api/v1/users?limit=1 answered)"

    probed: dict[str, str] = {}
    if settings.OKTA_API_TOKEN and connect:
        probes = dict(PROBES)
        if first_user:
            probes["okta.roles.read"] = ("/api/v1/users/{}/roles", (first_user,), {})
        for scope, (path, ids, query) in probes.items():
            try:
                await okta_read(path, *ids, query=query)
                probed[scope] = ""
            except OktaError as exc:
                probed[scope] = str(exc)

    granted = set(settings.OKTA_API_SCOPES)
    checks = []
    for spec in sorted(REGISTRY.values(), key=lambda s: s.name):
        scopes = spec.okta_scopes
        if not scopes:
            checks.append(ToolCheck(spec.name, spec.access, scopes, "ok", "makes no Okta call"))
        elif not settings.OKTA_API_TOKEN:
            missing = [s for s in scopes if not _covered(s, granted)]
            status = "missing scope" if missing else "ok"
            checks.append(ToolCheck(spec.name, spec.access, scopes, status, " ".join(missing) and f"not granted: {' '.join(missing)}"))
        elif not connect:
            checks.append(ToolCheck(spec.name, spec.access, scopes, "not probed", "--no-connect"))
        else:
            failures = [f"{s}: {probed[s]}" for s in scopes if probed.get(s)]
            unprobed = [s for s in scopes if s not in probed]
            if failures:
                checks.append(ToolCheck(spec.name, spec.access, scopes, "failing", "; ".join(failures)))
            elif unprobed:
                checks.append(ToolCheck(spec.name, spec.access, scopes, "not probed", "writes are never tried: they would change Okta"))
            else:
                checks.append(ToolCheck(spec.name, spec.access, scopes, "ok"))
    return OktaCheckReport(org_url=settings.OKTA_ORG_URL, mode=mode, connection=connection, tools=tuple(checks))
