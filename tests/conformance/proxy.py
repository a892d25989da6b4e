"""A test-only reverse proxy that lets clients which cannot send a bearer token (the MCP
conformance suite) talk to the real, authenticated /mcp endpoint.

It adds `Authorization: Bearer <token>` (a real token from the real OAuth flow) when the request
has none, and otherwise passes the request and the streamed response through unchanged. The product
has no switch that turns authentication off; this proxy lives under tests/ and is never deployed.

Host and Origin, and why they are not simply copied: the client is told the proxy's URL, so a
legitimate client sends `Host: <proxy authority>` and `Origin: http://<proxy authority>`, while
our server only accepts its own public authority and origin. The proxy therefore stands in for the
server exactly like a production TLS front end: the proxy's *own* authority and origin are
translated to the server's public ones, and every *other* value (for instance the
`Host: evil.example.com` / `Origin: http://evil.example.com` of the DNS-rebinding scenario) reaches
the server byte for byte. A 421 or 403 seen by the suite is thus the server's own answer, never the
proxy's. Nothing else is rewritten: no X-Forwarded-* headers are added, hop-by-hop headers are
dropped as RFC 9110 §7.6.1 requires, and the body travels untouched in both directions."""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2 as httpx
import uvicorn

HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}


class BearerProxy:
    """The ASGI app. `token` may be replaced between tests."""

    def __init__(self, *, upstream: str, listen_authority: str, token: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self.upstream_authority = parts.netloc
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self.listen_authority = listen_authority
        self.listen_origins = {f"http://{listen_authority}"}
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self._client: httpx.AsyncClient | None = None

    def _headers(self, scope: dict[str, Any]) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        has_authorization = False
        for raw_name, value in scope["headers"]:
            name = raw_name.lower()
            if name in HOP_BY_HOP or name == b"content-length":
                continue  # the body is re-sent whole; the client library sets Content-Length
            if name == b"host" and value.decode("latin-1") == self.listen_authority:
                value = self.upstream_authority.encode()
            elif name == b"origin" and value.decode("latin-1") in self.listen_origins:
                value = self.upstream_origin.encode()
            elif name == b"authorization":
                has_authorization = True
            out.append((raw_name, value))
        if not has_authorization:
            out.append((b"authorization", f"Bearer {self.token}".encode()))
        return out

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self._client is None:
            # No read timeout: a legacy GET /mcp is a server-sent-events stream that may stay idle.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), follow_redirects=False)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = self._headers(scope)
        path = scope.get("raw_path") or scope["path"].encode()
        url = self.upstream + path.decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        self.requests.append({"method": scope["method"], "path": scope["path"], "headers": headers})
        request = self._client.build_request(scope["method"], url, headers=headers, content=b"".join(chunks))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            body = f"proxy: upstream unreachable: {type(exc).__name__}".encode()
            await send({"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            response_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": response_headers})
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()
        finally:
            await response.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningProxy:
    """The proxy under uvicorn in a background thread of the test process."""

    def __init__(self, *, upstream: str, token: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = BearerProxy(upstream=upstream, listen_authority=f"127.0.0.1:{self.port}", token=token)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            server_header=False,  # the server's own Server and Date headers pass through instead
            date_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="bearer-proxy", daemon=True)

    def start(self) -> RunningProxy:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the bearer proxy did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description="Test-only proxy that adds a bearer token (from $MCP_BEARER_TOKEN).")
    parser.add_argument("--upstream", required=True, help="the server's public origin, e.g. http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    proxy = RunningProxy(upstream=args.upstream, token=os.environ["MCP_BEARER_TOKEN"], port=args.port or None)
    proxy.start()
    print(f"proxying {proxy.url} -> {args.upstream}", flush=True)
    try:
        proxy.thread.join()
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
