"""Client ID Metadata Documents through django-oauth-toolkit's hooks (CIMD_METADATA_FETCHER and
CIMD_REGISTRATION_PERMISSION_CLASSES). DOT resolves a client_id that is an https URL by fetching it
and storing an Application; consent.clients then holds that client until it is approved.

What DOT's SafeMetadataFetcher already enforces, and this fetcher keeps: https only; the host is
resolved once and every address must be global (no private, loopback, link-local, CGNAT, multicast,
reserved, or IPv4 smuggled in IPv6 forms), and the connection goes to that validated address with
certificate and SNI checked against the host name (no DNS rebinding between check and connect); no
redirect is followed (any non-200 answer is a failure, so a redirect to an internal host goes
nowhere); one deadline for the whole fetch (CIMD_FETCH_TIMEOUT_SECONDS); a size cap
(CIMD_MAX_DOCUMENT_SIZE); JSON only; Cache-Control max-age honoured within
[CIMD_METADATA_MIN_AGE_SECONDS, CIMD_METADATA_MAX_AGE_SECONDS]; a failure backoff and an in-flight
cap; the document's client_id must equal the URL; public clients only.

What is added here: every redirect URI in the document must be https, or http to a loopback address
(the rule every other client follows); `Expires` is honoured when there is no Cache-Control; and a
document is only fetched for an authorization request, while the number of clients awaiting approval
is under CLIENT_MAX_PENDING.

The fetch logic is DOT's, restated so that name resolution and the TLS trust store are constructor
arguments: DOT constructs the fetcher without arguments, which gives exactly the behaviour above; a
test can construct it with a resolver that knows one test host and a context trusting a test CA."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3
from django.conf import settings
from oauth2_provider import cimd as dot_cimd
from oauth2_provider.cimd import CIMDError, SafeMetadataFetcher
from oauth2_provider.models import Application
from oauth2_provider.settings import oauth2_settings

logger = logging.getLogger("okta_mcp.oauth")

Resolver = Callable[[str, int], list[str]]


class MetadataFetcher(SafeMetadataFetcher):
    def __init__(self, *, resolve: Resolver | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        # The default resolver refuses any host with a non-global address (see the module docstring).
        self._resolve: Resolver = resolve or dot_cimd._resolve_and_validate
        self._ssl_context = ssl_context

    def fetch(self, client_id: str) -> tuple[dict[str, Any], int]:
        parsed = dot_cimd._validate_client_id_url(client_id)
        hostname = parsed.hostname or ""
        port = parsed.port or 443
        ips = self._resolve(hostname, port)
        timeout = oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        headers = {"Host": parsed.netloc, "Accept": "application/json, application/*+json"}
        context = self._ssl_context or ssl.create_default_context()
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        for ip in ips:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pool = urllib3.HTTPSConnectionPool(
                host=ip,
                port=port,
                timeout=urllib3.Timeout(connect=remaining, read=remaining, total=remaining),
                retries=False,
                maxsize=1,
                ssl_context=context,
                server_hostname=hostname,
            )
            try:
                response = pool.urlopen("GET", path, headers=headers, redirect=False, preload_content=False)
                try:
                    if response.status in (301, 302, 303, 307, 308):
                        raise CIMDError(
                            f"client_id document answered with a redirect (HTTP {response.status}); "
                            "redirects are not followed"
                        )
                    metadata, max_age = self._read_document(response)
                finally:
                    response.release_conn()
                self._check_document(metadata)
                return metadata, max_age
            except urllib3.exceptions.HTTPError as exc:
                last_exc = exc
            finally:
                pool.close()
        raise CIMDError(f"could not fetch client_id document: {last_exc}")

    def _read_document(self, response: Any) -> tuple[dict[str, Any], int]:
        metadata, max_age = super()._read_document(response)
        if not response.headers.get("Cache-Control") and response.headers.get("Expires"):
            max_age = _max_age_from_expires(response.headers.get("Expires", ""), response.headers.get("Date", ""))
        return metadata, max_age

    def _check_document(self, metadata: dict[str, Any]) -> None:
        from consent.oauth_validator import redirect_uri_allowed

        uris = metadata.get("redirect_uris")
        if isinstance(uris, list):
            bad = [str(u) for u in uris if not isinstance(u, str) or not redirect_uri_allowed(u)]
            if bad:
                raise CIMDError(f"redirect URIs must be https, or http to a loopback address: {', '.join(bad)}")


def _max_age_from_expires(expires: str, date: str) -> int:
    """RFC 9111 §4.2.1: without max-age, freshness is Expires minus Date; an unparsable Expires
    means already stale. Clamped like DOT clamps max-age."""
    floor = oauth2_settings.CIMD_METADATA_MIN_AGE_SECONDS
    ceiling = oauth2_settings.CIMD_METADATA_MAX_AGE_SECONDS
    try:
        end = parsedate_to_datetime(expires)
        start = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return floor
    if end is None or end.tzinfo is None:
        return floor
    if start is None or start.tzinfo is None:
        from django.utils import timezone

        start = timezone.now()
    return max(floor, min(int((end - start).total_seconds()), ceiling))


class AuthorizationRequestPermission:
    """Fetch a metadata document only for an authorization request, which the consent view serves
    to signed-in people only: the token and revocation endpoints, open to anyone, never make this
    server fetch a URL it has not seen. New clients are refused while CLIENT_MAX_PENDING wait."""

    def has_permission(self, request: Any, client_id: str) -> bool:
        if not getattr(request, "response_type", None):
            return False
        if Application.objects.filter(client_id=client_id).exists():
            return True  # a known client's cached document being refreshed
        from consent.clients import clients_pending_count

        if clients_pending_count() >= settings.CLIENT_MAX_PENDING:
            logger.warning(
                "CIMD client %r not fetched: %d clients already await approval", client_id, settings.CLIENT_MAX_PENDING
            )
            return False
        return True
