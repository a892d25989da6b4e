from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User


@admin.register(User)
class OktaUserAdmin(UserAdmin):
    list_display = ("username", "okta_login", "okta_status", "is_staff", "groups_synced_at")
    search_fields = ("username", "okta_login", "email", "okta_sub")
    readonly_fields = ("okta_sub", "okta_login", "okta_status", "okta_groups", "okta_group_ids", "groups_synced_at")
    fieldsets = UserAdmin.fieldsets + (("Okta", {"fields": readonly_fields}),)
