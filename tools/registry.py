"""The tool registry: the only source of tool names. Each tool declares what it does, whether it
reads or writes Okta, and whether it is destructive; roles may only name tools registered here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel

Access = Literal["read", "write"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    purpose: str
    access: Access
    destructive: bool
    idempotent: bool
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    handler: Callable[[Any, Any], Awaitable[BaseModel]]
    okta_scopes: tuple[str, ...] = ()
    """The Okta OAuth scopes the tool's Okta calls need (what `okta_check` reports)."""
    open_world: bool = True
    """The tool talks to Okta (MCP openWorldHint); false for tools answered from our own data."""

    @property
    def required_scopes(self) -> frozenset[str]:
        if self.access == "write":
            return frozenset({settings.SCOPE_READ, settings.SCOPE_WRITE})
        return frozenset({settings.SCOPE_READ})


REGISTRY: dict[str, ToolSpec] = {}


def register(
    *,
    name: str,
    title: str,
    access: Access,
    input_model: type[BaseModel],
    output_model: type[BaseModel],
    destructive: bool = False,
    idempotent: bool = True,
    okta_scopes: tuple[str, ...] = (),
    open_world: bool = True,
) -> Callable[[Callable[[Any, Any], Awaitable[BaseModel]]], Callable[[Any, Any], Awaitable[BaseModel]]]:
    def decorator(fn: Callable[[Any, Any], Awaitable[BaseModel]]) -> Callable[[Any, Any], Awaitable[BaseModel]]:
        if name in REGISTRY:
            raise ValueError(f"tool {name} registered twice")
        purpose = (fn.__doc__ or "").strip()
        if not purpose:
            raise ValueError(f"tool {name} needs a docstring: it is the description the model reads")
        REGISTRY[name] = ToolSpec(
            name=name,
            title=title,
            purpose=purpose,
            access=access,
            destructive=destructive,
            idempotent=idempotent,
            input_model=input_model,
            output_model=output_model,
            handler=fn,
            okta_scopes=okta_scopes,
            open_world=open_world,
        )
        return fn

    return decorator


def tool_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Registry names grouped for the admin checklist, destructive tools marked."""
    groups: dict[str, list[tuple[str, str]]] = {"Read": [], "Write": []}
    for spec in sorted(REGISTRY.values(), key=lambda s: s.name):
        label = f"{spec.name} — {spec.title}" + (" (destructive)" if spec.destructive else "")
        groups["Write" if spec.access == "write" else "Read"].append((spec.name, label))
    return [(k, v) for k, v in groups.items() if v]
