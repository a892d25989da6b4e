"""The one Okta Management API client of this process, and the one wrapper every Okta call goes
through. The okta SDK is imported lazily (it costs seconds and ~100 MB) and configured only from our
settings: every key it would otherwise take from a stray okta.yaml or OKTA_CLIENT_* variable is set
explicitly here. Calls use the server's own Okta credential; AI-client tokens never reach Okta."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger("okta_mcp.okta")

_client: Any = None
_client_lock = threading.Lock()
_semaphores: dict[int, asyncio.Semaphore] = {}


class OktaError(Exception):
    """An Okta call that failed in a way the caller (and the model) should read."""

    def __init__(self, message: str, *, code: str = "", request_id: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.status = status


@dataclass
class OktaCallInfo:
    """What the audit row wants to know about the Okta calls made while serving one request."""

    request_ids: list[str] = field(default_factory=list)
    rate_limit_wait_seconds: float = 0.0


def _stray_configuration() -> list[str]:
    found = [k for k in os.environ if k.startswith("OKTA_CLIENT_")]
    for path in (Path.home() / ".okta" / "okta.yaml", Path.cwd() / "okta.yaml"):
        if path.exists():
            found.append(str(path))
    return found


def okta_client_config() -> dict[str, Any]:
    """The SDK configuration, every key set so that nothing else can fill it in."""
    org = settings.OKTA_ORG_URL
    config: dict[str, Any] = {
        "orgUrl": org,
        "connectionTimeout": settings.OKTA_REQUEST_TIMEOUT_SECONDS,
        "requestTimeout": settings.OKTA_REQUEST_TIMEOUT_SECONDS,
        # Retries are ours (bounded wait on 429, see okta_call); the SDK's need headers it may not get.
        "rateLimit": {"maxRetries": 0},
        "cache": {"enabled": False, "defaultTtl": 0, "defaultTti": 0},
        "logging": {"enabled": False},
        "proxy": {"host": "", "port": "", "username": "", "password": ""},
        "userAgent": "okta-mcp",
    }
    if settings.OKTA_API_TOKEN:
        config.update({"authorizationMode": "SSWS", "token": settings.OKTA_API_TOKEN})
    else:
        key = settings.OKTA_PRIVATE_KEY or Path(settings.OKTA_PRIVATE_KEY_FILE).read_text()
        config.update(
            {
                "authorizationMode": "PrivateKey",
                "clientId": settings.OKTA_SERVICE_CLIENT_ID,
                "scopes": settings.OKTA_API_SCOPES,
                "privateKey": key,
                "kid": settings.OKTA_KEY_ID or None,
            }
        )
    parts = urlsplit(org)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        # The SDK only accepts plain http with this variable set; we allow it for loopback alone
        # (the sandbox), never for a real org.
        os.environ["OKTA_TESTING_TESTINGDISABLEHTTPSCHECK"] = "1"
    return config


def okta_client() -> Any:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                stray = _stray_configuration()
                if stray:
                    logger.warning("ignoring Okta SDK configuration found outside our settings: %s", ", ".join(stray))
                from okta.client import Client

                _client = Client(okta_client_config())
    return _client


def _semaphore() -> asyncio.Semaphore:
    loop_id = id(asyncio.get_running_loop())
    sem = _semaphores.get(loop_id)
    if sem is None:
        sem = _semaphores[loop_id] = asyncio.Semaphore(settings.OKTA_MAX_CONCURRENT_REQUESTS)
    return sem


def _header(resp: Any, name: str) -> str:
    try:
        headers = resp.get_headers() if hasattr(resp, "get_headers") else getattr(resp, "headers", None)
        return str(headers.get(name, "")) if headers else ""
    except Exception:  # noqa: BLE001 - a missing header is never worth failing a call over
        return ""


RATE_LIMIT_MAX_WAIT_SECONDS = 10.0


async def okta_call(method: str, *args: Any, info: OktaCallInfo | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """Run one okta SDK call (`client.<method>(*args)`) with a timeout, a per-process concurrency
    bound, a bounded wait on 429 and errors turned into OktaError. Returns (data, response)."""
    client = okta_client()
    info = info if info is not None else OktaCallInfo()
    attempts = 0
    while True:
        attempts += 1
        async with _semaphore():
            try:
                result = await asyncio.wait_for(
                    getattr(client, method)(*args, **kwargs), timeout=settings.OKTA_REQUEST_TIMEOUT_SECONDS
                )
            except asyncio.TimeoutError:
                raise OktaError(f"Okta did not answer within {settings.OKTA_REQUEST_TIMEOUT_SECONDS} s") from None
            except (OSError, ConnectionError) as exc:
                raise OktaError(f"Okta could not be reached: {type(exc).__name__}") from None
            except Exception as exc:  # noqa: BLE001 - the SDK raises odd things on bare 5xx
                logger.warning("okta call %s failed: %s", method, type(exc).__name__)
                text = str(exc)
                if "Cannot connect" in text or "Connect" in type(exc).__name__:
                    raise OktaError("Okta could not be reached (connection refused)") from None
                raise OktaError(f"Okta returned an unexpected response ({type(exc).__name__})") from None
        data, resp, err = result if len(result) == 3 else (None, result[0], result[1])
        request_id = _header(resp, "X-Okta-Request-Id") or (getattr(err, "headers", {}) or {}).get("X-Okta-Request-Id", "")
        if request_id:
            info.request_ids.append(request_id)
        if err is None:
            return data, resp
        status = getattr(err, "status", None) or (resp.get_status() if hasattr(resp, "get_status") else None)
        headers = getattr(err, "headers", None) or {}
        if status == 429:
            reset = headers.get("X-Rate-Limit-Reset") or _header(resp, "X-Rate-Limit-Reset")
            wait = max(0.0, float(reset) - time.time()) if reset else 1.0
            if attempts <= 2 and wait <= RATE_LIMIT_MAX_WAIT_SECONDS:
                info.rate_limit_wait_seconds += wait
                await asyncio.sleep(wait)
                continue
            raise OktaError(
                f"rate limited by Okta, retry after {int(wait) + 1} s",
                code="E0000047",
                request_id=request_id,
                status=429,
            )
        code = getattr(err, "error_code", "") or ""
        summary = getattr(err, "error_summary", "") or str(getattr(err, "message", "")) or "Okta error"
        if not code and status and status >= 500:
            summary = f"Okta returned HTTP {status}"
        raise OktaError(
            f"{summary.strip()}" + (f" (errorCode {code})" if code else "") + (f" [request {request_id}]" if request_id else ""),
            code=code,
            request_id=request_id,
            status=status,
        )


@dataclass(frozen=True)
class OktaUserState:
    status: str
    groups: list[str]
    group_ids: list[str]


async def okta_user_state(user_id: str, info: OktaCallInfo | None = None) -> OktaUserState:
    """The user's lifecycle status and group memberships, as Okta has them now."""
    user, _ = await okta_call("get_user", user_id, info=info)
    # Okta returns all of a user's groups in one response (the endpoint is not paginated).
    groups, _ = await okta_call("list_user_groups", user_id, info=info)
    groups = list(groups or [])
    status = getattr(user.status, "value", user.status) if user is not None else ""
    return OktaUserState(
        status=str(status or ""),
        groups=sorted(name for name in (_group_name(g) for g in groups) if name),
        group_ids=sorted(str(g.id) for g in groups),
    )


def _group_name(group: Any) -> str:
    # The SDK models a group's profile as a oneOf (Okta or AD group profile); the dict form is uniform.
    profile = (group.to_dict() if hasattr(group, "to_dict") else {}).get("profile") or {}
    return str(profile.get("name") or "")
