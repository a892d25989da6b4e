"""Reads for the tools app, including the one policy function. The tool list, the call gate, the
consent page, the admin's effective-access view and the `effective_access` command all ask
`tools_allowed_for`; none of them decides on its own."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from tools.models import GroupMapping, Role
from tools.registry import REGISTRY, ToolSpec


@dataclass(frozen=True)
class EffectiveAccess:
    roles: tuple[str, ...]
    granted: frozenset[str]
    """Tools the roles grant, limited to tools that exist in the registry."""
    scopes: frozenset[str] | None
    """The token's scopes, or None to ask what the roles grant regardless of scopes."""

    @functools.cached_property
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


def stored_tool_names(stored: Any) -> list[str]:
    """Tool names stored on a role; anything else in the JSON column grants nothing."""
    return [t for t in stored if isinstance(t, str)] if isinstance(stored, list) else []


def tools_allowed_for(
    *, groups: Iterable[str], group_ids: Iterable[str] = (), scopes: Iterable[str] | None = None
) -> EffectiveAccess:
    """Default deny: a user's tools are the union of the tools of every role mapped to one of their
    Okta groups, restricted to registered tools. A write tool also needs `mcp.write` in `scopes`."""
    names, ids = {g for g in groups if g}, {i for i in group_ids if i}
    roles: list[Role] = []
    if names or ids:
        # With an id the mapping matches by id only; without one, by exact name.
        matching = GroupMapping.objects.filter(Q(okta_group_id="", group_name__in=names) | Q(okta_group_id__in=ids))
        roles = list(Role.objects.filter(pk__in=matching.values("role_id")).order_by("name"))
    granted = frozenset(t for role in roles for t in stored_tool_names(role.tools) if t in REGISTRY)
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
    stored = role.tools if isinstance(role.tools, list) else [role.tools]
    return sorted(str(t) for t in stored if not isinstance(t, str) or t not in REGISTRY)


@dataclass(frozen=True)
class ToolAccessRow:
    name: str
    title: str
    access: str
    destructive: bool
    required_scopes: tuple[str, ...]
    callable: bool
    """Callable with the scopes the report was asked about."""
    needs_step_up: bool
    """Granted by a role, but a token with those scopes must first be stepped up."""


@dataclass(frozen=True)
class AccessReport:
    """What the admin's effective-access view and the `effective_access` command show."""

    user: Any | None
    groups: tuple[str, ...]
    group_ids: tuple[str, ...]
    scopes: tuple[str, ...]
    access: EffectiveAccess
    rows: tuple[ToolAccessRow, ...]

    @property
    def callable_tools(self) -> frozenset[str]:
        return frozenset(r.name for r in self.rows if r.callable)


def effective_access_report(
    *,
    user: Any | None = None,
    groups: Iterable[str] = (),
    group_ids: Iterable[str] = (),
    scopes: Iterable[str] | None = None,
) -> AccessReport:
    """The policy function's answer, laid out for people. For a user, the groups are those stored at
    their last login or token refresh (what their next /mcp request is judged on). Without scopes,
    the client's default scopes are assumed, which is what a client gets unless it asks for more."""
    default = settings.OAUTH2_PROVIDER["DEFAULT_SCOPES"]
    token_scopes = tuple(sorted(set(scopes if scopes is not None else default)))
    if user is not None:
        groups, group_ids = tuple(user.okta_groups or ()), tuple(user.okta_group_ids or ())
        access = tools_allowed_for_user(user, scopes=token_scopes)
    else:
        groups, group_ids = tuple(groups), tuple(group_ids)
        access = tools_allowed_for(groups=groups, group_ids=group_ids, scopes=token_scopes)
    rows = tuple(
        ToolAccessRow(
            name=spec.name,
            title=spec.title,
            access=spec.access,
            destructive=spec.destructive,
            required_scopes=tuple(sorted(spec.required_scopes)),
            callable=access.can_call(spec.name),
            needs_step_up=access.needs_step_up(spec.name),
        )
        for spec in (REGISTRY[n] for n in sorted(access.granted))
    )
    return AccessReport(user=user, groups=groups, group_ids=group_ids, scopes=token_scopes, access=access, rows=rows)
