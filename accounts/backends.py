"""Okta login through mozilla-django-oidc, extended through its backend hooks: the ID token must be
RS256 from our Okta issuer for our client, unexpired, with the nonce we sent; users are keyed by the
Okta subject and never matched by email."""

from __future__ import annotations

from typing import Any

import jwt
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts.models import User
from accounts.services import user_login_from_claims
from audit.services import RequestMeta


class OktaOIDCBackend(OIDCAuthenticationBackend):
    def get_payload_data(self, token: bytes | str, key: Any) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256":
                raise SuspiciousOperation("ID token is not RS256")
            return jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=settings.OIDC_RP_CLIENT_ID,
                issuer=settings.OKTA_ISSUER,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"ID token rejected: {type(exc).__name__}") from None

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        # The verified ID token is authoritative. Userinfo only fills in missing profile fields, and
        # must describe the same subject.
        claims = dict(payload)
        if not claims.get("preferred_username") and not claims.get("email"):
            extra = super().get_userinfo(access_token, id_token, payload)
            if extra.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("userinfo subject differs from the ID token")
            claims = {**extra, **claims}
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return User.objects.filter(okta_sub=str(claims["sub"]))

    def create_user(self, claims: dict[str, Any]) -> User:
        return self._login(claims)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        return self._login(claims)

    def get_user(self, user_id: Any) -> User | None:
        user = super().get_user(user_id)
        # The web session ends with the person's standing in Okta: once a refresh or a code
        # redemption has seen them suspended or deactivated, /authorize sends them back to Okta
        # (which refuses them) instead of issuing a new code on an old session.
        if user is None or not user.is_active or user.okta_status != "ACTIVE":
            return None
        return user

    def _login(self, claims: dict[str, Any]) -> User:
        user = user_login_from_claims(claims=claims, meta=RequestMeta.from_django(self.request))
        if user.okta_status != "ACTIVE":
            # The library turns this into a failed login (no session).
            raise SuspiciousOperation(f"user is {user.okta_status} in Okta")
        return user
