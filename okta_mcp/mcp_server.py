"""The MCP server, built in one factory. Handlers are thin: they read the principal and the policy
decision that the HTTP gate (okta_mcp.mcp_endpoint) attached to the request, write the audit rows
through tools.services and run the tool."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import anyio
import mcp_types as types
from asgiref.sync import sync_to_async
from mcp.server.caching import CacheHint
from mcp.server.lowlevel import Server
from pydantic import BaseModel, ValidationError

from tools import services as tool_services
from tools.context import ToolContext, ToolFailure, ToolNeedsInput
from tools.okta import OktaError
from tools.registry import REGISTRY, ToolSpec
from tools.selectors import EffectiveAccess

SCOPE_PRINCIPAL = "okta_mcp.principal"
SCOPE_ACCESS = "okta_mcp.access"
SCOPE_META = "okta_mcp.meta"


# Specs never change in a running process, and building the JSON schemas of every tool cost ~1 ms per
# tool on each tools/list (measured: 54 ms for 45 tools).
@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def tool_definition(spec: ToolSpec) -> types.Tool:
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.purpose,
        input_schema=_schema(spec.input_model),
        output_schema=_schema(spec.output_model),
        annotations=types.ToolAnnotations(
            title=spec.title,
            read_only_hint=spec.access == "read",
            destructive_hint=spec.destructive,
            idempotent_hint=spec.idempotent,
            open_world_hint=spec.open_world,
        ),
    )


def _error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _request_state(ctx: Any) -> tuple[Any, EffectiveAccess, Any]:
    scope = ctx.request.scope
    return scope[SCOPE_PRINCIPAL], scope[SCOPE_ACCESS], scope[SCOPE_META]


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    principal, access, meta = _request_state(ctx)
    specs = access.specs()
    await sync_to_async(tool_services.tools_listed)(principal=principal, tools=[s.name for s in specs], meta=meta)
    return types.ListToolsResult(tools=[tool_definition(s) for s in specs], cache_scope="private", ttl_ms=0)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult | types.InputRequiredResult:
    principal, access, meta = _request_state(ctx)
    name = params.name
    arguments = params.arguments or {}
    if not access.can_call(name):
        # A tool the caller may not use looks exactly like a tool that does not exist.
        reason = "not granted" if name in REGISTRY else "unknown tool"
        await sync_to_async(tool_services.tool_call_decide)(
            principal=principal, tool=name[:255], allowed=False, reason=reason, arguments={}, meta=meta
        )
        return _error_result(f"Unknown tool: {name}")
    spec = REGISTRY[name]
    try:
        args = spec.input_model.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        await sync_to_async(tool_services.tool_call_decide)(
            principal=principal, tool=name, allowed=False, reason="invalid arguments", arguments=arguments, meta=meta
        )
        return _error_result(f"Invalid arguments for {name}: {problems}")
    try:
        # Fail closed: the decision row is committed before the tool runs, or the tool does not run.
        call_event = await sync_to_async(tool_services.tool_call_decide)(
            principal=principal, tool=name, allowed=True, reason="granted by role", arguments=arguments, meta=meta
        )
    except Exception:  # noqa: BLE001 - whatever broke the audit write, the call must not run
        return _error_result("The audit trail is unavailable, so the call was not run. Try again later.")

    tool_ctx = ToolContext(principal=principal, mcp=ctx)
    started = time.monotonic()
    outcome, error_code, message = "error", "internal", ""
    try:
        result = await spec.handler(tool_ctx, args)
        outcome, error_code, message = tool_ctx.outcome, "", tool_ctx.note
        structured = result.model_dump(mode="json")
        # Compact separators keep json on its C encoder (indent would not): a 200-user page matters.
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(structured, separators=(",", ":")))],
            structured_content=structured,
        )
    except ToolNeedsInput as exc:
        # A destructive tool asking its user to confirm, on the 2026-07-28 wire (no back channel).
        outcome, error_code, message = tool_ctx.outcome, "", tool_ctx.note
        return exc.result
    except (ToolFailure, OktaError) as exc:
        error_code = getattr(exc, "code", "") or "tool_error"
        message = str(exc)
        return _error_result(message)
    except Exception:  # noqa: BLE001 - the model sees a short message, never the traceback
        message = "internal error"
        return _error_result(f"Error executing tool {name}")
    finally:
        if outcome == "error" and error_code == "internal" and not message:
            error_code, message = "cancelled", "client went away or the call was cancelled"
        # Shielded so that the outcome is recorded even when the client disconnects mid-call.
        with anyio.CancelScope(shield=True):
            await sync_to_async(tool_services.tool_call_finish)(
                principal=principal,
                tool=name,
                call_event_id=call_event.pk,
                outcome=outcome,
                error_code=error_code,
                duration_ms=int((time.monotonic() - started) * 1000),
                okta_request_ids=tool_ctx.okta.request_ids,
                meta=meta,
                message=message,
            )


def _input_schema(name: str) -> dict[str, Any] | None:
    spec = REGISTRY.get(name)
    return _schema(spec.input_model) if spec else None


def build_server() -> Server[Any]:
    return Server(
        "okta-mcp",
        version="0.1.0",
        title="Okta",
        instructions=(
            "Tools for reading (and, where your roles allow, changing) this organisation's Okta. "
            "Call whoami to see who you act as; the tools you see are the tools your Okta groups grant."
        ),
        cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
        get_tool_input_schema=_input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
