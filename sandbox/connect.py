"""A minimal MCP client for the demo: connects to an okta-mcp server by URL with the official MCP
SDK, runs the OAuth flow in your browser (a loopback redirect, PKCE), then lists the tools you may
use and calls whoami.

    .venv/bin/python sandbox/connect.py [--url http://127.0.0.1:8000/mcp] [--client-id demo-mcp-client]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class Storage:
    def __init__(self, client_id: str, redirect_uri: str) -> None:
        self.tokens: OAuthToken | None = None
        self.info = OAuthClientInformationFull(
            client_id=client_id, redirect_uris=[redirect_uri], token_endpoint_auth_method="none"
        )

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull:
        return self.info

    async def set_client_info(self, info: OAuthClientInformationFull) -> None:
        self.info = info


def wait_for_callback(port: int) -> dict[str, str]:
    result: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            query = parse_qs(urlsplit(self.path).query)
            result.update({k: v[0] for k, v in query.items()})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Done. You can close this tab and return to the terminal.")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    while not result:
        server.handle_request()
    server.server_close()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000/mcp")
    parser.add_argument("--client-id", default="demo-mcp-client")
    parser.add_argument("--scope", default="mcp.read")
    parser.add_argument("--port", type=int, default=33418, help="loopback port for the OAuth redirect")
    parser.add_argument("--no-browser", action="store_true", help="print the login URL instead of opening it")
    args = parser.parse_args()
    redirect_uri = f"http://127.0.0.1:{args.port}/callback"

    async def redirect_handler(url: str) -> None:
        print(f"\nOpen this URL to sign in and approve:\n  {url}\n")
        if not args.no_browser:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    async def callback_handler() -> AuthorizationCodeResult:
        params = await asyncio.to_thread(wait_for_callback, args.port)
        if "code" not in params:
            raise SystemExit(f"authorization failed: {params.get('error')} {params.get('error_description', '')}")
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    provider = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(redirect_uris=[redirect_uri], scope=args.scope, token_endpoint_auth_method="none"),
        storage=Storage(args.client_id, redirect_uri),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx.AsyncClient(auth=provider, timeout=60) as http:
        async with Client(streamable_http_client(args.url, http_client=http)) as client:  # type: ignore[arg-type]
            tools = await client.list_tools()
            print("Your tools:", ", ".join(t.name for t in tools.tools) or "(none)")
            me = await client.call_tool("whoami", {})
            print(json.dumps(me.structured_content, indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
