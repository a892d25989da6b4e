"""The one base of the admin pages for security data (audit rows, consents, sessions, credentials,
confirmations): they may be viewed, never added, changed or deleted there, superusers included.
Whatever changes them goes through a service (revocation commands and actions, the OAuth flow)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyModelAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
