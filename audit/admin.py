from __future__ import annotations

import csv
import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everyone, superusers included: the audit trail is evidence, and an admin that
    could edit or delete rows would make it worthless (the hash chain would also break)."""

    list_display = ("id", "created", "event_type", "actor_login", "client_id", "target", "decision", "outcome")
    list_filter = ("event_type", "decision", "outcome", "created")
    search_fields = ("actor_login", "client_id", "request_id", "target")
    date_hierarchy = "created"
    actions = ["export_csv"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields] + ["details_pretty"]
    exclude = ("details",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="details")
    def details_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.details, indent=2, sort_keys=True))

    @admin.action(description="Export selected rows as CSV")
    def export_csv(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit.csv"'
        fields = [f.name for f in AuditEvent._meta.fields]
        writer = csv.writer(response)
        writer.writerow(fields)
        for event in queryset.order_by("id").iterator():
            writer.writerow([json.dumps(getattr(event, f)) if f == "details" else getattr(event, f) for f in fields])
        return response
