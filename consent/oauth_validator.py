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
from oauth2_provider.models import RefreshToken
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


class OktaMCPValidator(OAuth2Validator):
    def validate_redirect_uri(self, client_id: str, redirect_uri: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        return redirect_uri_allowed(redirect_uri) and super().validate_redirect_uri(
            client_id, redirect_uri, request, *args, **kwargs
        )

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
        return valid

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
        from accounts.services import user_refresh_from_okta

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
        status = user_refresh_from_okta(user=user)
        if status is None:
            # Okta could not be asked: refuse this refresh, but revoke nothing on a transient failure.
            return "could not confirm the user's status with Okta"
        if status != "ACTIVE":
            services.consent_revoke(
                user=user,
                reason=f"Okta status {status}",
                actor=None,
                meta=RequestMeta(user_agent="token refresh"),
            )
            return f"user is {status} in Okta; tokens revoked"
        return ""

    def _save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        rt_before = getattr(request, "refresh_token_instance", None)
        session = None
        if request.grant_type == "refresh_token" and rt_before is not None:
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
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        audit_record(
            event_type=EventType.TOKEN_REVOKED,
            actor=getattr(request, "user", None) if getattr(request, "user", None) else None,
            client_id=getattr(getattr(request, "client", None), "client_id", ""),
            reason="RFC 7009 revocation request",
            details={"token_type_hint": token_type_hint or ""},
            meta=_meta(request),
        )
