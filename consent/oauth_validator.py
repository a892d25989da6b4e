"""django-oauth-toolkit's validator, extended through its hooks: the resource must be our MCP
endpoint, redirects must be https or loopback, a replayed code revokes what it issued, and a refresh
only works inside the login session and while the consent holds."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from oauthlib.oauth2.rfc6749 import errors
from oauth2_provider.models import AccessToken, RefreshToken
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.oauth2_validators import OAuth2Validator

from audit.models import Decision, EventType
from audit.services import RequestMeta, audit_record
from consent import services
from consent.selectors import login_session_for_family

logger = logging.getLogger("okta_mcp.oauth")


def redirect_uri_allowed(uri: str) -> bool:
    """https anywhere, plain http only to a loopback host (RFC 8252 §7.3; any port)."""
    parts = urlsplit(uri)
    if parts.fragment or not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _meta(request: Any) -> RequestMeta:
    headers = getattr(request, "headers", None) or {}
    return RequestMeta(
        source_ip=str(headers.get("REMOTE_ADDR", "") or ""),
        user_agent=str(headers.get("HTTP_USER_AGENT", "") or "")[:512],
    )


def _checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class _ConcurrentRefresh(errors.InvalidGrantError):
    def __init__(self, refresh_token: RefreshToken) -> None:
        super().__init__(description="refresh token already used")
        self.refresh_token = refresh_token


class OktaMCPOAuthLibCore(OAuthLibCore):
    def create_token_response(self, request: Any) -> tuple[Any, dict[str, str], str, int]:
        uri, headers, body, status = super().create_token_response(request)
        # Errors raised while tokens are saved (invalid_target, a consent revoked meanwhile) come
        # back from DOT without oauthlib's headers; every token response is JSON, never cached.
        headers = {**headers, "Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}
        return uri, headers, body, status


class OktaMCPValidator(OAuth2Validator):
    def _load_application(self, client_id: str, request: Any) -> Any:
        # Every flow loads its client here: a self-registered client (metadata document or RFC
        # 7591) that is not approved is an unknown client to /authorize, the consent form and /token.
        from consent.clients import client_gate

        client = super()._load_application(client_id, request)
        if client is not None and not client_gate(application=client, meta=_meta(request)):
            request.client = None
            return None
        return client

    def validate_redirect_uri(self, client_id: str, redirect_uri: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        return redirect_uri_allowed(redirect_uri) and super().validate_redirect_uri(
            client_id, redirect_uri, request, *args, **kwargs
        )

    def confirm_redirect_uri(
        self, client_id: str, code: str, redirect_uri: str, client: Any, *args: Any, **kwargs: Any
    ) -> bool:
        if not super().confirm_redirect_uri(client_id, code, redirect_uri, client, *args, **kwargs):
            # RFC 6749 §5.2: a redirect URI that differs from the authorization request's is
            # invalid_grant (oauthlib would answer invalid_request).
            raise errors.InvalidGrantError(description="redirect_uri does not match the authorization request")
        return True

    def _check_and_set_request_resource(self, request: Any) -> None:
        super()._check_and_set_request_resource(request)
        # Absent means our MCP endpoint; anything else is a resource we do not serve (RFC 8707 §2).
        if not request.resource:
            request.resource = [settings.MCP_RESOURCE]
        if request.resource != [settings.MCP_RESOURCE]:
            raise errors.CustomOAuth2Error(
                error="invalid_target",
                description=f"The only resource served here is {settings.MCP_RESOURCE}",
                request=request,
            )

    def validate_code(self, client_id: str, code: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        valid = super().validate_code(client_id, code, client, request, *args, **kwargs)
        if not valid:
            services.code_replay_revoke(code=code, client_id=client_id, meta=_meta(request))
            return False
        # A code can come from a web session that outlived the person's standing in Okta: ask Okta
        # again before minting tokens. Unreachable Okta does not block it (the login just read it).
        reason = self._okta_refusal(request.user, fail_closed=False)
        if reason:
            audit_record(
                event_type=EventType.AUTHORIZATION_DENIED,
                actor=request.user,
                client_id=client.client_id,
                decision=Decision.DENIED,
                reason=reason,
                meta=_meta(request),
            )
            return False
        return True

    def validate_refresh_token(self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        known = RefreshToken.objects.filter(token_checksum=_checksum(refresh_token)).select_related("user").first()
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        meta = _meta(request)
        if not valid:
            if known is not None and known.revoked is not None:
                # DOT has already revoked the family (REFRESH_TOKEN_REUSE_PROTECTION); record it.
                session = login_session_for_family(known.token_family)
                if session is not None and session.revoked_at is None:
                    session.revoked_at = timezone.now()
                    session.save(update_fields=["revoked_at"])
                audit_record(
                    event_type=EventType.TOKEN_REUSE_DETECTED,
                    actor=known.user,
                    client_id=client.client_id,
                    target=f"session:{known.token_family}",
                    decision=Decision.DENIED,
                    reason="rotated refresh token presented again; family revoked",
                    meta=meta,
                )
            return False
        rt: RefreshToken = request.refresh_token_instance
        reason = self._refresh_refusal(rt)
        if reason:
            audit_record(
                event_type=EventType.TOKEN_REFRESH_DENIED,
                actor=rt.user,
                client_id=client.client_id,
                target=f"session:{rt.token_family}",
                decision=Decision.DENIED,
                reason=reason,
                meta=meta,
            )
            return False
        return True

    def _refresh_refusal(self, rt: RefreshToken) -> str:
        session = login_session_for_family(rt.token_family)
        now = timezone.now()
        if session is None:
            return "no login session for this token family"
        if session.revoked_at is not None:
            return "login session revoked"
        if session.ends_at <= now:
            return "login session lifetime exceeded; re-authorize"
        consent = session.consent
        if consent.revoked_at is not None:
            return "consent revoked"
        if consent.expires_at <= now:
            return "consent expired"
        user = rt.user
        if user is None or not user.is_active:
            return "user inactive"
        # Okta could not be asked: refuse this refresh, but revoke nothing on a transient failure.
        return self._okta_refusal(user, fail_closed=True)

    def _okta_refusal(self, user: Any, *, fail_closed: bool) -> str:
        """Re-read the user's status and groups from Okta; anyone Okta no longer has as ACTIVE loses
        every consent, token and login session."""
        from accounts.services import user_refresh_from_okta

        if user is None or not user.is_active:
            return "user inactive"
        status = user_refresh_from_okta(user=user)
        if status is None:
            return "could not confirm the user's status with Okta" if fail_closed else ""
        if status != "ACTIVE":
            services.consent_revoke(
                user=user,
                reason=f"Okta status {status}",
                actor=None,
                meta=RequestMeta(user_agent="token endpoint"),
            )
            return f"user is {status} in Okta; tokens revoked"
        return ""

    def save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().save_bearer_token(token, request, *args, **kwargs)
        except _ConcurrentRefresh as exc:
            # Recorded after the refused transaction rolled back, so the row survives.
            audit_record(
                event_type=EventType.TOKEN_REFRESH_DENIED,
                actor=exc.refresh_token.user,
                client_id=request.client.client_id,
                target=f"session:{exc.refresh_token.token_family}",
                decision=Decision.DENIED,
                reason="refresh token rotated by a simultaneous request; that request's tokens stay valid",
                meta=_meta(request),
            )
            raise errors.InvalidGrantError(description="refresh token already used", request=request) from None

    def _save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        rt_before = getattr(request, "refresh_token_instance", None)
        session = None
        if request.grant_type == "refresh_token" and rt_before is not None:
            # Two refreshes with one token can both pass validation before either rotates it. The
            # second to get here (the row lock, or SQLite's write lock, orders them) finds it revoked
            # and is refused, leaving the user the winner's family. DOT would instead answer it with
            # the winner's tokens, which exist only as hashes (a 500).
            if RefreshToken.objects.select_for_update().filter(pk=rt_before.pk, revoked__isnull=True).first() is None:
                raise _ConcurrentRefresh(rt_before)
            session = login_session_for_family(rt_before.token_family)
            if session is not None:
                # Access tokens never outlive the login session they belong to.
                remaining = int((session.ends_at - timezone.now()).total_seconds())
                token["expires_in"] = max(1, min(int(token.get("expires_in", 3600)), remaining))
        super()._save_bearer_token(token, request, *args, **kwargs)
        meta = _meta(request)
        new_rt = RefreshToken.objects.filter(token_checksum=_checksum(token.get("refresh_token", ""))).first()
        details = {"scope": token.get("scope", ""), "resource": request.resource, "expires_in": token.get("expires_in")}
        if request.grant_type == "authorization_code":
            if new_rt is None:
                raise errors.InvalidGrantError(description="no refresh token issued", request=request)
            try:
                session = services.login_session_start(
                    user=request.user, application=request.client, code=request.code, token_family=new_rt.token_family
                )
            except services.ConsentError as exc:
                raise errors.InvalidGrantError(description="consent is no longer valid", request=request) from exc
            audit_record(
                event_type=EventType.TOKEN_ISSUED,
                actor=request.user,
                client_id=request.client.client_id,
                target=f"session:{session.token_family}",
                decision=Decision.ALLOWED,
                details=details,
                meta=meta,
            )
        else:
            audit_record(
                event_type=EventType.TOKEN_REFRESHED,
                actor=request.user,
                client_id=request.client.client_id,
                target=f"session:{new_rt.token_family if new_rt else ''}",
                decision=Decision.ALLOWED,
                details=details,
                meta=meta,
            )

    def revoke_token(self, token: str, token_type_hint: str, request: Any, *args: Any, **kwargs: Any) -> None:
        # Only the requesting client's own live tokens are revoked (DOT scopes the lookup the same
        # way). Unknown and foreign tokens get the same 200 (RFC 7009 §2.2) and no audit row: a
        # row per request would let anyone holding a public client_id grow the audit table.
        application_id = getattr(getattr(request, "client", None), "pk", None)
        lookup = {"token_checksum": _checksum(token), "application_id": application_id}
        access = AccessToken.objects.select_related("user").filter(**lookup).first()
        refresh = RefreshToken.objects.select_related("user").filter(revoked__isnull=True, **lookup).first()
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        found = access or refresh
        if application_id is None or found is None:
            return
        audit_record(
            event_type=EventType.TOKEN_REVOKED,
            actor=found.user,
            client_id=request.client.client_id,
            target=f"access_token:{access.pk}" if access else f"session:{refresh.token_family}",
            reason="RFC 7009 revocation request",
            details={"kind": "access_token" if access else "refresh_token", "hint": token_type_hint or ""},
            meta=_meta(request),
        )
