from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User
from consent.principal_cache import authz_changed


@admin.register(User)
class OktaUserAdmin(UserAdmin):
    list_display = ("username", "okta_login", "okta_status", "is_staff", "groups_synced_at")
    search_fields = ("username", "okta_login", "email", "okta_sub")
    readonly_fields = ("okta_sub", "okta_login", "okta_status", "okta_groups", "okta_group_ids", "groups_synced_at")
    fieldsets = UserAdmin.fieldsets + (("Okta", {"fields": readonly_fields}),)

    def get_readonly_fields(self, request: Any, obj: User | None = None) -> tuple[str, ...]:
        # An Okta user's username is "okta:<sub>", set at login: it is not for editing here (and the
        # colon would fail Django's username validator, so no Okta user could be saved at all).
        if obj is not None and obj.okta_sub:
            return ("username", *self.readonly_fields)
        return tuple(self.readonly_fields)

    # A user disabled or removed here must lose /mcp access at their next request on every replica.
    def save_model(self, request: Any, obj: User, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        authz_changed()

    def delete_model(self, request: Any, obj: User) -> None:
        super().delete_model(request, obj)
        authz_changed()

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        authz_changed()
