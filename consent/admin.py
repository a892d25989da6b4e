from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider import admin as _dot_admin  # noqa: F401 - its registrations happen first, ours replace them
from oauth2_provider.models import AccessToken, Application, Grant, IDToken, RefreshToken

from audit.admin_readonly import ReadOnlyModelAdmin
from audit.services import RequestMeta
from consent import services
from consent.models import Consent, LoginSession


class ConsentStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True, expires_at__gt=now)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(Consent)
class ConsentAdmin(ReadOnlyModelAdmin):
    """Read-only: consent is given by users on the consent page and ended by revocation, which is
    recorded (not deleted) so that the audit trail keeps its subject."""

    list_display = ("id", "user", "application", "scopes", "granted_at", "expires_at", "status")
    list_filter = (ConsentStatusFilter, ("user", admin.RelatedOnlyFieldListFilter), "application")
    search_fields = ("user__okta_login", "application__client_id", "application__name")
    list_select_related = ("user", "application")
    actions = ["revoke_selected"]
    readonly_fields = [f.name for f in Consent._meta.fields]

    @admin.action(description="Revoke selected consents and their tokens")
    def revoke_selected(self, request: HttpRequest, queryset: Any) -> None:
        summary = services.consent_revoke(
            consent_ids=list(queryset.values_list("pk", flat=True)),
            reason=f"revoked in admin by {request.user}",
            actor=request.user,
            meta=RequestMeta.from_django(request),
        )
        self.message_user(request, str(summary), messages.SUCCESS)


@admin.register(LoginSession)
class LoginSessionAdmin(ReadOnlyModelAdmin):
    list_display = ("token_family", "user", "application", "started_at", "ends_at", "revoked_at")
    list_select_related = ("user", "application")
    search_fields = ("user__okta_login", "application__client_id")
    readonly_fields = [f.name for f in LoginSession._meta.fields if f.name != "code_hash"]
    exclude = ("code_hash",)


# django-oauth-toolkit registers its own token admins; they are replaced here (unregistered and
# registered again, rather than through its *_ADMIN_CLASS settings, so that the whole policy for
# security data lives in one file). Credentials are evidence and live secrets: no add, no change, no
# delete (a deleted row would also lose the revoked-refresh-token tombstone that reuse detection
# needs); the value itself is never shown (tokens are stored hashed, and the checksum, a lookup key
# for the token, is hidden too) and never searchable; "revoke selected" replaces delete and goes
# through consent.services.tokens_revoke, which writes the audit row.
class _ReadOnlyCredentialAdmin(ReadOnlyModelAdmin):
    secret_fields: tuple[str, ...] = ()
    search_fields = ("application__client_id", "application__name", "user__okta_login")
    list_select_related = ("application", "user")
    list_filter = ("application",)
    actions = ["revoke_selected"]
    revoke_argument = ""

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name not in self.secret_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    @admin.action(description="Revoke selected")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        revoked = services.tokens_revoke(
            **{self.revoke_argument: list(queryset.values_list("pk", flat=True))},
            reason=f"revoked in admin by {request.user}",
            actor=request.user,
            meta=RequestMeta.from_django(request),
        )
        self.message_user(request, f"Revoked {revoked} {self.model._meta.verbose_name_plural}.", messages.SUCCESS)


class AccessTokenAdmin(_ReadOnlyCredentialAdmin):
    secret_fields = ("token", "token_checksum")
    list_display = ("pk", "user", "application", "scope", "expires")
    revoke_argument = "access_token_ids"


class RefreshTokenAdmin(_ReadOnlyCredentialAdmin):
    secret_fields = ("token", "token_checksum")
    list_display = ("pk", "user", "application", "token_family", "created", "revoked")
    list_filter = ("application", ("revoked", admin.EmptyFieldListFilter))
    revoke_argument = "refresh_token_ids"


class GrantAdmin(_ReadOnlyCredentialAdmin):
    secret_fields = ("code", "code_challenge", "nonce", "claims")
    list_display = ("pk", "user", "application", "expires")
    revoke_argument = "grant_ids"


class IDTokenAdmin(_ReadOnlyCredentialAdmin):
    secret_fields = ()
    list_display = ("jti", "user", "application", "expires")
    revoke_argument = "id_token_ids"


for _model, _admin_class in (
    (AccessToken, AccessTokenAdmin),
    (RefreshToken, RefreshTokenAdmin),
    (Grant, GrantAdmin),
    (IDToken, IDTokenAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)


class _ApplicationForm(_dot_admin.ApplicationForm):
    def clean_redirect_uris(self) -> str:
        # DOT accepts any http(s) URI; redirects here are https, or plain http to loopback only
        # (the rule the authorization endpoint and consent.services.client_register apply).
        from consent.oauth_validator import redirect_uri_allowed

        value = str(self.cleaned_data.get("redirect_uris") or "")
        bad = [uri for uri in value.split() if not redirect_uri_allowed(uri)]
        if bad:
            raise forms.ValidationError(
                "Redirect URIs must be https, or http to a loopback address (127.0.0.1, [::1], localhost): "
                + ", ".join(bad)
            )
        return value


class ApplicationAdmin(_dot_admin.ApplicationAdmin):
    form = _ApplicationForm


if admin.site.is_registered(Application):
    admin.site.unregister(Application)
admin.site.register(Application, ApplicationAdmin)

from consent import client_admin  # noqa: E402,F401 - client approval and onboarding admin, registered last
