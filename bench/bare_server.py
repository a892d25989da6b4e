"""The baseline of the benchmark: the MCP SDK's low-level server with the same tools, and nothing
else: no token check, no policy, no audit, no Django. Served by daphne like the real thing:

    BARE_TOOLS=var/bench/tools.json python -m daphne -p 8100 bench.bare_server:application

BARE_TOOLS is a JSON file written by bench/run.py from the real server's answers: {"tools": [the
tools/list result for the benchmark user], "whoami": the structured result of whoami}. tools/list
returns exactly those tools and tools/call whoami that result, so both servers send the same bytes.
BARE_LEGACY_SESSIONS=stateless mirrors MCP_LEGACY_SESSIONS; BARE_GC_THRESHOLD=default runs it with
CPython's collector thresholds instead of the full server's.

By default the handlers return the SDK's result models, as the SDK's examples do. The full server's
handlers return wire dicts (the tool definitions dumped once, okta_mcp.mcp_server), which spares the
SDK one dump per request; BARE_WIRE_DICTS=1 gives the bare server the same, so that the comparison
isolates the security layer (bench/run.py --bare-wire-dicts)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

_data = json.loads(Path(os.environ["BARE_TOOLS"]).read_text())
TOOLS = [types.Tool.model_validate(t) for t in _data["tools"]]
SCHEMAS = {t.name: t.input_schema for t in TOOLS}
WHOAMI: dict[str, Any] = _data["whoami"]


WIRE_DICTS = os.environ.get("BARE_WIRE_DICTS", "0") == "1"
TOOLS_WIRE = [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in TOOLS]


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult | dict[str, Any]:
    if WIRE_DICTS:
        # ttlMs and cacheScope from the cache hint (build_server), as in the full server.
        return {"tools": list(TOOLS_WIRE), "resultType": "complete"}
    return types.ListToolsResult(tools=TOOLS, cache_scope="private", ttl_ms=0)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult | dict[str, Any]:
    if params.name != "whoami":
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"Unknown tool: {params.name}")], is_error=True)
    text = json.dumps(WHOAMI, separators=(",", ":"), ensure_ascii=False)  # as the full server writes it
    if WIRE_DICTS:
        return {"content": [{"type": "text", "text": text}], "structuredContent": WHOAMI, "isError": False, "resultType": "complete"}
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=WHOAMI)


def build_server() -> Server[Any]:
    return Server(
        "okta-mcp-bare",
        version="0.1.0",
        cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
        get_tool_input_schema=SCHEMAS.get,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class BareApp:
    """The session manager started lazily by the first request (daphne sends no lifespan events),
    exactly as okta_mcp.mcp_endpoint does."""

    def __init__(self) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=build_server(), stateless=os.environ.get("BARE_LEGACY_SESSIONS", "memory") == "stateless"
        )
        self._ready: asyncio.Event | None = None

    async def _ensure_started(self) -> None:
        if self._ready is None:
            self._ready = asyncio.Event()

            async def run() -> None:
                async with self.manager.run():
                    assert self._ready is not None
                    self._ready.set()
                    await asyncio.Event().wait()

            self._task = asyncio.create_task(run())
        await self._ready.wait()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await self._ensure_started()
        await self.manager.handle_request(scope, receive, send)


application = BareApp()
gc.collect()
gc.freeze()
# The full server's collector setting (okta_mcp.asgi.GC_THRESHOLD_GEN0), unless BARE_GC_THRESHOLD
# says otherwise ("default" keeps CPython's): the comparison is about the security layer, not the
# collector.
_threshold = os.environ.get("BARE_GC_THRESHOLD", "50000")
if _threshold != "default":
    gc.set_threshold(int(_threshold), 20, 20)
