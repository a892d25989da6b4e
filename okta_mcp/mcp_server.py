"""The MCP server, built in one factory. Handlers are thin: they read the principal and the policy
decision that the HTTP gate (okta_mcp.mcp_endpoint) attached to the request, write the audit rows
through tools.services and run the tool."""

from __future__ import annotations

import functools
import time
from typing import Any

import anyio
import orjson
import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import BaseModel, ValidationError

from audit.writer import AuditUnavailable
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


_AUDIT_DOWN = "The audit trail is unavailable, so the call was not run. Try again later."


def _tool_result(result: BaseModel) -> dict[str, Any]:
    """A tool's successful result, as the wire form of a CallToolResult: its JSON as structured
    content and, for clients that only read text, as a text block. A plain dict because the SDK
    validates and dumps a handler's result for the negotiated protocol version anyway: a model
    here would be dumped once more before that (measured: 0.18 ms of CPU for a 200-user page).
    "resultType" is what the 2026-07-28 result requires (the CallToolResult model sets it by
    default); for 2025-11-25 and earlier the SDK leaves it out."""
    structured = result.model_dump(mode="json")
    # orjson: the json module took a millisecond to encode a 200-user page.
    return {
        "content": [{"type": "text", "text": orjson.dumps(structured).decode()}],
        "structuredContent": structured,
        "isError": False,
        "resultType": "complete",
    }


def _request_state(ctx: Any) -> tuple[Any, EffectiveAccess, Any]:
    scope = ctx.request.scope
    return scope[SCOPE_PRINCIPAL], scope[SCOPE_ACCESS], scope[SCOPE_META]


@functools.cache
def _tool_wire(name: str) -> dict[str, Any]:
    return tool_definition(REGISTRY[name]).model_dump(by_alias=True, mode="json", exclude_none=True)


@functools.lru_cache(maxsize=256)
def _tool_list(usable: frozenset[str]) -> tuple[dict[str, Any], ...]:
    return tuple(_tool_wire(n) for n in sorted(usable))


async def list_tools(ctx: Any, params: Any) -> dict[str, Any]:
    """The caller's tools, as the wire form of a ListToolsResult. A plain dict for the reason
    _tool_result gives: the definitions never change in a running process, so each is dumped once,
    and the SDK only validates and sieves the list for the negotiated protocol version (measured:
    dumping the models took 1.2 ms of CPU per tools/list of 37 tools). The SDK copies what a handler
    returns before shaping it, and only reads the definitions, so they are shared between requests.
    ttlMs and cacheScope come from the server's cache hint for tools/list (build_server), the one place
    they are set; "resultType" as in _tool_result."""
    principal, access, meta = _request_state(ctx)
    tools = _tool_list(access.usable)
    try:
        await tool_services.tools_listed(principal=principal, tools=[t["name"] for t in tools], meta=meta)
    except AuditUnavailable:
        raise MCPError(code=INTERNAL_ERROR, message="The audit trail is unavailable. Try again later.") from None
    return {"tools": list(tools), "resultType": "complete"}


async def call_tool(
    ctx: Any, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult | dict[str, Any]:
    principal, access, meta = _request_state(ctx)
    name = params.name
    arguments = params.arguments or {}
    if not access.can_call(name):
        # A tool the caller may not use looks exactly like a tool that does not exist: both are the
        # protocol error the MCP specification gives for an unknown tool.
        reason = "not granted" if name in REGISTRY else "unknown tool"
        try:
            await tool_services.tool_call_denied(
                principal=principal, tool=name[:255], reason=reason, arguments={}, meta=meta
            )
        except AuditUnavailable:
            raise MCPError(code=INTERNAL_ERROR, message=_AUDIT_DOWN) from None
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name[:255]}")
    spec = REGISTRY[name]
    try:
        args = spec.input_model.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        try:
            await tool_services.tool_call_denied(
                principal=principal, tool=name, reason="invalid arguments", arguments=arguments, meta=meta
            )
        except AuditUnavailable:
            return _error_result(_AUDIT_DOWN)
        return _error_result(f"Invalid arguments for {name}: {problems}")
    decided = None
    if spec.access != "read":
        # Fail closed: a write tool's decision is on disk before Okta is touched, or the tool does not run.
        try:
            decided = await tool_services.tool_call_decided(
                principal=principal, tool=name, arguments=arguments, meta=meta
            )
        except AuditUnavailable:
            return _error_result(_AUDIT_DOWN)

    tool_ctx = ToolContext(principal=principal, mcp=ctx)
    started = time.monotonic()
    outcome, error_code, message = "error", "internal", ""
    response: types.CallToolResult | types.InputRequiredResult | dict[str, Any]
    try:
        result = await spec.handler(tool_ctx, args)
        outcome, error_code, message = tool_ctx.outcome, "", tool_ctx.note
        response = _tool_result(result)
    except ToolNeedsInput as exc:
        # A destructive tool asking its user to confirm, on the 2026-07-28 wire (no back channel).
        outcome, error_code, message = tool_ctx.outcome, "", tool_ctx.note
        response = exc.result
    except (ToolFailure, OktaError) as exc:
        error_code = getattr(exc, "code", "") or "tool_error"
        message = str(exc)
        response = _error_result(message)
    except Exception:  # noqa: BLE001 - the model sees a short message, never the traceback
        message = "internal error"
        response = _error_result(f"Error executing tool {name}")
    finally:
        if outcome == "error" and error_code == "internal" and not message:
            error_code, message = "cancelled", "client went away or the call was cancelled"
        # Shielded so that the outcome is recorded even when the client disconnects mid-call.
        with anyio.CancelScope(shield=True):
            try:
                await tool_services.tool_call_finished(
                    principal=principal,
                    tool=name,
                    decided=decided,
                    arguments=arguments,
                    outcome=outcome,
                    error_code=error_code,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    okta_request_ids=tool_ctx.okta.request_ids,
                    meta=meta,
                    message=message,
                )
                audited = True
            except AuditUnavailable:
                audited = False
    if not audited and decided is None:
        # A read's result is its disclosure: it does not leave without its audit row. (A write's
        # decision is already on disk and its change made: its result goes back regardless.)
        return _error_result("The audit trail is unavailable, so the result was withheld. Try again later.")
    return response


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
