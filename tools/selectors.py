"""Reads for the tools app, including the one policy function. The tool list, the call gate, the
consent page, the admin's effective-access view and the `effective_access` command all ask
`tools_allowed_for`; none of them decides on its own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tools.models import GroupMapping, Role
from tools.registry import REGISTRY, ToolSpec


@dataclass(frozen=True)
class EffectiveAccess:
    roles: tuple[str, ...]
    granted: frozenset[str]
    """Tools the roles grant, limited to tools that exist in the registry."""
    scopes: frozenset[str] | None
    """The token's scopes, or None to ask what the roles grant regardless of scopes."""

    @property
    def usable(self) -> frozenset[str]:
        if self.scopes is None:
            return self.granted
        return frozenset(n for n in self.granted if REGISTRY[n].required_scopes <= self.scopes)

    def can_call(self, name: str) -> bool:
        return name in self.usable

    def needs_step_up(self, name: str) -> bool:
        """Granted by a role but the token lacks a scope the tool needs."""
        return name in self.granted and name not in self.usable

    def specs(self) -> list[ToolSpec]:
        return [REGISTRY[n] for n in sorted(self.usable)]


def tools_allowed_for(
    *, groups: Iterable[str], group_ids: Iterable[str] = (), scopes: Iterable[str] | None = None
) -> EffectiveAccess:
    """Default deny: a user's tools are the union of the tools of every role mapped to one of their
    Okta groups, restricted to registered tools. A write tool also needs `mcp.write` in `scopes`."""
    names, ids = set(groups), set(group_ids)
    role_ids: set[int] = set()
    for mapping in GroupMapping.objects.only("role_id", "group_name", "okta_group_id"):
        matched = mapping.okta_group_id in ids if mapping.okta_group_id else mapping.group_name in names
        if matched:
            role_ids.add(mapping.role_id)
    roles = list(Role.objects.filter(pk__in=role_ids).order_by("name")) if role_ids else []
    granted = frozenset(t for role in roles for t in role.tools if t in REGISTRY)
    return EffectiveAccess(
        roles=tuple(r.name for r in roles),
        granted=granted,
        scopes=frozenset(scopes) if scopes is not None else None,
    )


def tools_allowed_for_user(user: object, scopes: Iterable[str] | None = None) -> EffectiveAccess:
    return tools_allowed_for(
        groups=getattr(user, "okta_groups", None) or [],
        group_ids=getattr(user, "okta_group_ids", None) or [],
        scopes=scopes,
    )


def role_unknown_tools(role: Role) -> list[str]:
    """Names stored on a role that the registry no longer has (shown as a warning in admin)."""
    return sorted(t for t in role.tools if t not in REGISTRY)
