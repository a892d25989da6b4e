"""The one Okta Management API client of this process, and the one wrapper every Okta call goes
through. The okta SDK is imported lazily (it costs seconds and ~100 MB) and configured only from our
settings: its own loader, which would read OKTA_CLIENT_* variables and okta.yaml files, is limited
to its defaults, so nothing outside our settings can change the client (any such source present is
named in a warning, as ignored). Calls use the server's own Okta credential; AI-client tokens never
reach Okta.

Each event loop keeps one HTTP session with keep-alive connections to Okta (the SDK alone opens a
connection, and against Okta a TLS handshake, per request).

`okta_call` adds what the SDK lacks: a timeout on every call, a per-process bound on concurrent
calls, Okta's rate-limit headers honoured (a 429 waits until the reset, bounded, then retries),
and every failure turned into an `OktaError` whose message a person (or a model) can act on:
Okta's errorCode, summary and request id, or a plain "timed out" / "connection refused" /
"HTTP 503" for failures that never reached Okta's error handling."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import orjson
from django.conf import settings

from okta_mcp import metrics

logger = logging.getLogger("okta_mcp.okta")

_client: Any = None
_client_lock = threading.Lock()
_loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}
_loops_lock = threading.Lock()
# Idle connections to Okta are dropped after this, before an intermediary is likely to drop them
# (a request on a connection the far end has closed fails, and aiohttp retries only idempotent ones).
KEEPALIVE_SECONDS = 15.0
# Rate-limit buckets that Okta reported exhausted (X-Rate-Limit-Remaining: 0): operation -> reset epoch.
_exhausted_until: dict[str, float] = {}


class OktaError(Exception):
    """An Okta call that failed in a way the caller (and the model) should read."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        request_id: str = "",
        status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.status = status
        self.retry_after = retry_after


class OktaTransportError(Exception):
    """Raised by our HTTP client hook when a request got no HTTP response at all. The SDK (3.4.6)
    would otherwise lose the cause and fail later with an AttributeError."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


@dataclass
class OktaCallInfo:
    """What the audit row wants to know about the Okta calls made while serving one request."""

    request_ids: list[str] = field(default_factory=list)
    rate_limit_wait_seconds: float = 0.0
    calls: int = 0


@dataclass
class _LoopState:
    """What Okta calls share within one event loop: the bound on concurrent calls and the HTTP
    session (its connection pool)."""

    semaphore: asyncio.Semaphore
    session: Any = None
    closer: Any = None


def _loop_state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)
    if state is None:
        with _loops_lock:
            for closed in [other for other in _loops if other.is_closed()]:
                del _loops[closed]
            state = _loops.setdefault(loop, _LoopState(asyncio.Semaphore(settings.OKTA_MAX_CONCURRENT_REQUESTS)))
    return state


async def _close_with_loop(session: Any) -> AsyncIterator[None]:
    # Left suspended at the yield: the loop's shutdown_asyncgens() (asyncio.run, anyio.run and
    # asgiref's own loops all call it before closing a loop) closes it, and the session with it,
    # on its own loop. A loop that lives as long as the process (daphne's) keeps its session.
    try:
        yield
    finally:
        await session.close()


async def _loop_session() -> Any:
    """The HTTP session of the running event loop (created on first use)."""
    state = _loop_state()
    if state.session is None or state.session.closed:
        import aiohttp

        state.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
            # Okta's cookies are of no use to API calls; one call must not carry state into the next.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        state.closer = _close_with_loop(state.session)
        await state.closer.__anext__()
    return state.session


def _sdk_config_setter(*, allow_http: bool) -> type:
    """The SDK's configuration loader, limited to the SDK's defaults (our settings go over them):
    it reads no OKTA_CLIENT_* / OKTA_TESTING_* variable and no okta.yaml."""
    from okta.config.config_setter import ConfigSetter

    class SettingsOnlyConfigSetter(ConfigSetter):  # type: ignore[misc]
        def _update_config(self) -> None:
            self._apply_default_values()
            # The SDK accepts a plain-http org URL only with this (normally an environment variable).
            self._config["testing"]["testingDisableHttpsCheck"] = allow_http

    return SettingsOnlyConfigSetter


def _stray_configuration() -> list[str]:
    """The SDK configuration sources present that the SDK's loader would have read by itself: its
    variables, named exactly as it derives them from its keys (OKTA_CLIENT_ORGURL, OKTA_CLIENT_TOKEN,
    OKTA_CLIENT_CLIENTID, ...; not our own OKTA_CLIENT_ID and OKTA_CLIENT_SECRET), and okta.yaml files."""
    from okta.config import config_setter
    from okta.utils import flatten_dict

    keys = flatten_dict(_sdk_config_setter(allow_http=False)().get_config(), delimiter="::")
    names = {"OKTA_" + key.replace("::", "_").upper() for key in keys}
    found = sorted(name for name in names if name in os.environ)
    for path in (config_setter._GLOBAL_YAML_PATH, config_setter._LOCAL_YAML_PATH):
        if os.path.exists(path):
            found.append(str(path))
    return found


def _http_client_class() -> type:
    """The SDK's HTTP client with two changes: requests go through the running loop's pooled session,
    and a request that got no response raises instead of being returned as an error the generated
    API code then trips over."""
    from okta.http_client import HTTPClient

    class PooledRaisingHTTPClient(HTTPClient):  # type: ignore[misc]
        @property
        def _session(self) -> Any:
            # The SDK's own hook for a reusable session is one attribute per client; sessions belong
            # to an event loop, so it answers the running loop's (made by send_request below).
            state = _loops.get(asyncio.get_running_loop())
            return state.session if state is not None else None

        @_session.setter
        def _session(self, value: Any) -> None:
            pass  # set to None by HTTPClient.__init__; sessions are per loop, see _loop_session

        async def send_request(self, request: Any) -> Any:
            await _loop_session()
            request_info, response, body, error = await super().send_request(request)
            if response is None and error is not None:
                raise OktaTransportError(error)
            return request_info, response, body, error

        @staticmethod
        def check_response_for_error(url: str, response_details: Any, response_body: Any) -> Any:
            # The request executor keeps only the error: a success need not be parsed once more
            # (a 200-user page is ~140 kB of JSON). Errors go through the SDK's own reading.
            if 200 <= response_details.status <= 299:
                return None, None
            return HTTPClient.check_response_for_error(url, response_details, response_body)

    return PooledRaisingHTTPClient


def _request_executor_class() -> type:
    from okta.request_executor import RequestExecutor

    class UncachedRequestExecutor(RequestExecutor):  # type: ignore[misc]
        async def fire_request(self, request: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
            # The SDK's version parses every successful GET body once more only to decide whether
            # to cache it; our cache is off (okta_client_config). Retries, DPoP nonces and the
            # SDK's 429 handling are in fire_request_helper, unchanged.
            _, response, body, error = await self.fire_request_helper(request, 0, time.time())
            if error is not None:
                return None, response, body, error
            return request, response, body, None

    return UncachedRequestExecutor


def okta_client_config() -> dict[str, Any]:
    """The SDK configuration from our settings. The SDK's loader adds its own defaults under it and
    nothing else (see _sdk_config_setter)."""
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
        "raiseException": False,
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
                "dpopEnabled": settings.OKTA_DPOP,
            }
        )
    return config


def _plain_http_allowed() -> bool:
    # Plain http for loopback alone (the sandbox), never for a real org.
    parts = urlsplit(settings.OKTA_ORG_URL)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def okta_client() -> Any:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                from okta import client as sdk

                stray = _stray_configuration()
                if stray:
                    logger.warning("ignoring Okta SDK configuration found outside our settings: %s", ", ".join(stray))
                config = okta_client_config()
                config["httpClient"] = _http_client_class()
                config["requestExecutor"] = _request_executor_class()
                # Client builds its loader by this module-level name; only this process builds
                # clients, and only here, under the lock.
                sdk_loader = sdk.ConfigSetter
                sdk.ConfigSetter = _sdk_config_setter(allow_http=_plain_http_allowed())
                try:
                    _client = sdk.Client(config)
                finally:
                    sdk.ConfigSetter = sdk_loader
                # The SDK keeps its error-raising switch on a class: pin it, whatever else set it.
                from okta.http_client import HTTPClient

                HTTPClient.raise_exception = False
                # The SDK brings ~160k long-lived objects; left to the collector, every full
                # collection walks them (measured: ~120 ms pauses about once a second under load).
                gc.freeze()
    return _client


def okta_client_reset() -> None:
    """Forget the client (and rate-limit state), so the next call builds one from the settings as
    they are now: for `okta_check` after a configuration change and for tests."""
    global _client
    with _client_lock:
        _client = None
        _exhausted_until.clear()


def _headers_of(resp: Any, err: Any = None) -> Any:
    for source in (resp, err):
        if source is None:
            continue
        headers = source.get_headers() if hasattr(source, "get_headers") else getattr(source, "headers", None)
        if headers:
            return headers
    return {}


def _header(headers: Any, name: str) -> str:
    try:
        value = headers.get(name)
        if value is None:
            value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
        return str(value) if value is not None else ""
    except Exception:  # noqa: BLE001 - a malformed header is never worth failing a call over
        return ""


def response_json(resp: Any) -> Any:
    """The body Okta sent with a typed SDK call, parsed: the whole object (or list), exactly as Okta
    has it. (The SDK's models drop read-only and unknown fields in `to_dict()`.)"""
    raw = getattr(resp, "raw_data", None)
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class OktaResponse:
    """An Okta answer to a read: the JSON body as Okta sent it, and Okta's `after` cursor of the
    next page (from the Link rel="next" header) when there is one."""

    body: Any
    next_after: str | None
    request_id: str


def _next_after(response: Any) -> str | None:
    # Okta sends rel="self" and rel="next" as separate Link headers; aiohttp parses them all.
    try:
        link = response.links.get("next")
    except Exception:  # noqa: BLE001 - a malformed Link header means no next page
        return None
    if not link:
        return None
    values = parse_qs(urlsplit(str(link.get("url", ""))).query).get("after")
    return values[0] if values else None


def _rate_limit_wait(headers: Any) -> float | None:
    reset = _header(headers, "X-Rate-Limit-Reset")
    try:
        return max(0.0, float(reset) - time.time()) if reset else None
    except ValueError:
        return None


def _note_rate_limit(method: str, headers: Any) -> None:
    """Honour X-Rate-Limit-Remaining: when a bucket is empty, later calls wait for its reset
    instead of spending a request on a certain 429."""
    remaining = _header(headers, "X-Rate-Limit-Remaining")
    reset = _header(headers, "X-Rate-Limit-Reset")
    if remaining == "0" and reset:
        try:
            _exhausted_until[method] = float(reset)
        except ValueError:
            pass
    else:
        _exhausted_until.pop(method, None)


def _rate_limited(wait: float, request_id: str = "") -> OktaError:
    metrics.okta_rate_limited(waited_seconds=None)
    seconds = int(wait) + 1
    return OktaError(
        f"rate limited, retry after {seconds} s (Okta errorCode E0000047)" + (f" [request {request_id}]" if request_id else ""),
        code="E0000047",
        request_id=request_id,
        status=429,
        retry_after=seconds,
    )


async def _timed(operation: str, call: Any) -> Any:
    """Await one SDK call and record its latency and result for /metrics."""
    started = time.monotonic()
    result = "exception"
    try:
        answer = await call
        err = answer[-1] if isinstance(answer, tuple) and answer else None
        status = getattr(err, "status", None)
        result = "ok" if err is None else (f"http_{status}" if status else "error")
        return answer
    except asyncio.TimeoutError:
        result = "timeout"
        raise
    except OktaTransportError as exc:
        result = "timeout" if isinstance(exc.cause, asyncio.TimeoutError) else "unreachable"
        raise
    finally:
        metrics.okta_call_observe(operation=operation, result=result, seconds=time.monotonic() - started)


def _unreachable(exc: OktaTransportError) -> OktaError:
    cause = exc.cause
    timeout = settings.OKTA_REQUEST_TIMEOUT_SECONDS
    if isinstance(cause, asyncio.TimeoutError):
        return OktaError(f"Okta did not answer within {timeout} s (timeout)", code="timeout")
    text = f"{type(cause).__name__}: {cause}"
    if isinstance(cause, ConnectionRefusedError) or "refused" in text.lower() or "Connect call failed" in text:
        return OktaError(f"Okta could not be reached at {settings.OKTA_ORG_URL} (connection refused)", code="unreachable")
    if "ssl" in text.lower() or "certificate" in text.lower():
        return OktaError(f"Okta could not be reached at {settings.OKTA_ORG_URL} (TLS error)", code="unreachable")
    return OktaError(f"Okta could not be reached at {settings.OKTA_ORG_URL} ({type(cause).__name__})", code="unreachable")


def _error_from(err: Any, resp: Any, request_id: str) -> OktaError:
    status = getattr(err, "status", None) or getattr(resp, "status", None)
    code = str(getattr(err, "error_code", "") or "")
    summary = str(getattr(err, "error_summary", "") or "")
    causes = getattr(err, "error_causes", None) or []
    details = [str(c.get("errorSummary", "")) for c in causes if isinstance(c, dict) and c.get("errorSummary")]
    if not code:
        # No Okta error body (a proxy's or load balancer's page): say what happened, not its HTML.
        summary = f"Okta returned HTTP {status} without an Okta error body" if status else "Okta call failed"
    text = summary.strip() or "Okta error"
    if details:
        text += ": " + "; ".join(details)[:300]
    if code:
        text += f" (errorCode {code})"
    if request_id:
        text += f" [request {request_id}]"
    return OktaError(text, code=code or (f"http_{status}" if status else "okta_error"), request_id=request_id, status=status)


async def _call(
    operation: str, start: Callable[[], Awaitable[tuple[Any, ...]]], info: OktaCallInfo | None
) -> tuple[Any, Any]:
    """Run one Okta call with a timeout, a per-process concurrency bound, a bounded wait on 429 and
    errors turned into OktaError. Returns (data, response)."""
    info = info if info is not None else OktaCallInfo()
    max_wait = settings.OKTA_RATE_LIMIT_MAX_WAIT_SECONDS
    timeout = settings.OKTA_REQUEST_TIMEOUT_SECONDS
    attempts = 0
    while True:
        attempts += 1
        exhausted = _exhausted_until.get(operation)
        if exhausted is not None:
            wait = exhausted - time.time()
            if wait > max_wait:
                raise _rate_limited(wait)
            if wait > 0:
                metrics.okta_rate_limited(waited_seconds=wait)
                info.rate_limit_wait_seconds += wait
                await asyncio.sleep(wait)
            _exhausted_until.pop(operation, None)
        async with _loop_state().semaphore:
            info.calls += 1
            try:
                # The SDK has its own timeout (reported through OktaTransportError); this one is the
                # backstop for anything that hangs around it.
                result = await _timed(operation, asyncio.wait_for(start(), timeout=timeout + 1))
            except asyncio.TimeoutError:
                raise OktaError(f"Okta did not answer within {timeout} s (timeout)", code="timeout") from None
            except OktaTransportError as exc:
                logger.warning("okta call %s got no response: %s", operation, exc)
                raise _unreachable(exc) from None
            except (OSError, ConnectionError) as exc:
                raise OktaError(f"Okta could not be reached ({type(exc).__name__})", code="unreachable") from None
            except Exception as exc:  # noqa: BLE001 - the SDK raises odd things on odd answers
                logger.warning("okta call %s failed: %s", operation, type(exc).__name__)
                raise OktaError(f"the Okta call failed in the client ({type(exc).__name__})", code="client_error") from None
        # Data calls answer (data, response, error); calls that answer `Success` may answer (response, error).
        data, resp, err = result if len(result) == 3 else (None, result[0], result[1])
        headers = _headers_of(resp, err)
        request_id = _header(headers, "X-Okta-Request-Id")
        if request_id:
            info.request_ids.append(request_id)
        if err is None:
            _note_rate_limit(operation, headers)
            return data, resp
        status = getattr(err, "status", None) or getattr(resp, "status", None)
        if status == 429:
            wait = _rate_limit_wait(headers)
            wait = 1.0 if wait is None else wait
            if attempts <= settings.OKTA_RATE_LIMIT_MAX_RETRIES and wait <= max_wait:
                metrics.okta_rate_limited(waited_seconds=wait)
                info.rate_limit_wait_seconds += wait
                await asyncio.sleep(wait)
                _exhausted_until.pop(operation, None)
                continue
            raise _rate_limited(wait, request_id)
        raise _error_from(err, resp, request_id)


async def okta_call(method: str, *args: Any, info: OktaCallInfo | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """One typed okta SDK call, `client.<method>(*args, **kwargs)`, through `_call`. Returns
    (data, response). Used for changes (lifecycle, memberships), where the typed API says exactly
    what is done."""
    client = okta_client()
    return await _call(method, lambda: getattr(client, method)(*args, **kwargs), info)


# Metric labels for reads: the okta SDK's operation names, so that a read counts the same whichever
# way it is made.
READ_OPERATIONS = {
    "/api/v1/users": "list_users",
    "/api/v1/users/{}": "get_user",
    "/api/v1/users/{}/groups": "list_user_groups",
    "/api/v1/users/{}/appLinks": "list_app_links",
    "/api/v1/users/{}/factors": "list_factors",
    "/api/v1/users/{}/roles": "list_assigned_roles_for_user",
    "/api/v1/groups": "list_groups",
    "/api/v1/groups/{}": "get_group",
    "/api/v1/groups/{}/users": "list_group_users",
    "/api/v1/groups/{}/apps": "list_assigned_applications_for_group",
    "/api/v1/groups/rules": "list_group_rules",
    "/api/v1/groups/rules/{}": "get_group_rule",
    "/api/v1/apps": "list_applications",
    "/api/v1/apps/{}": "get_application",
    "/api/v1/apps/{}/users": "list_application_users",
    "/api/v1/apps/{}/groups": "list_application_group_assignments",
    "/api/v1/policies": "list_policies",
    "/api/v1/policies/{}": "get_policy",
    "/api/v1/policies/{}/rules": "list_policy_rules",
    "/api/v1/policies/{}/rules/{}": "get_policy_rule",
    "/api/v1/logs": "list_log_events",
    "/api/v1/zones": "list_network_zones",
    "/api/v1/zones/{}": "get_network_zone",
    "/api/v1/authenticators": "list_authenticators",
    "/api/v1/authenticators/{}": "get_authenticator",
    "/api/v1/devices": "list_devices",
    "/api/v1/devices/{}": "get_device",
    "/api/v1/device-assurances": "list_device_assurance_policies",
    "/api/v1/device-assurances/{}": "get_device_assurance_policy",
    "/api/v1/idps": "list_identity_providers",
    "/api/v1/idps/{}": "get_identity_provider",
    "/api/v1/authorizationServers": "list_authorization_servers",
    "/api/v1/authorizationServers/{}": "get_authorization_server",
    "/api/v1/trustedOrigins": "list_trusted_origins",
    "/api/v1/trustedOrigins/{}": "get_trusted_origin",
}


async def okta_read(
    template: str, *ids: str, query: dict[str, Any] | None = None, info: OktaCallInfo | None = None
) -> OktaResponse:
    """One GET through the okta SDK's request executor (its auth, DPoP and HTTP client), through
    `_call`. Reads take this path because the tools answer from Okta's JSON: the typed methods
    would also build a model of every object, which costs more than the rest of a 200-user page.
    `template` is an Okta path with {} for each id; ids are percent-encoded (and were validated
    by the tool before: nothing here can change the path)."""
    client = okta_client()
    path = template.format(*(quote(str(i), safe="") for i in ids))
    params = {k: v for k, v in (query or {}).items() if v is not None}
    if params:
        path += "?" + urlencode(params)

    async def get() -> tuple[Any, Any, Any]:
        executor = client.get_request_executor()
        request, error = await executor.create_request("GET", path, None, {"Accept": "application/json"})
        if error is not None:
            return None, None, error
        response, body, error = await executor.execute(request)
        return body, response, error

    body, response = await _call(READ_OPERATIONS.get(template, f"GET {template}"), get, info)
    try:
        parsed = orjson.loads(body) if body else None
    except ValueError:
        raise OktaError("Okta returned a body that is not JSON", code="bad_response") from None
    request_id = _header(_headers_of(response), "X-Okta-Request-Id")
    return OktaResponse(body=parsed, next_after=_next_after(response), request_id=request_id)


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
