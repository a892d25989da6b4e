from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone

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
class ConsentAdmin(admin.ModelAdmin):
    """Read-only: consent is given by users on the consent page and ended by revocation, which is
    recorded (not deleted) so that the audit trail keeps its subject."""

    list_display = ("id", "user", "application", "scopes", "granted_at", "expires_at", "status")
    list_filter = (ConsentStatusFilter, "application")
    search_fields = ("user__okta_login", "application__client_id", "application__name")
    list_select_related = ("user", "application")
    actions = ["revoke_selected"]
    readonly_fields = [f.name for f in Consent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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
class LoginSessionAdmin(admin.ModelAdmin):
    list_display = ("token_family", "user", "application", "started_at", "ends_at", "revoked_at")
    list_select_related = ("user", "application")
    search_fields = ("user__okta_login", "application__client_id")
    readonly_fields = [f.name for f in LoginSession._meta.fields if f.name != "code_hash"]
    exclude = ("code_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
