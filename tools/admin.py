from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from audit.services import RequestMeta
from tools import services
from tools.models import GroupMapping, Role
from tools.registry import tool_choices
from tools.selectors import role_unknown_tools


class RoleForm(forms.ModelForm):
    tools = forms.MultipleChoiceField(
        choices=tool_choices, widget=forms.CheckboxSelectMultiple, required=False, help_text="Grouped read / write."
    )

    class Meta:
        model = Role
        fields = ("name", "description", "tools")


class GroupMappingInline(admin.TabularInline):
    model = GroupMapping
    extra = 1
    fields = ("group_name", "okta_group_id")


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    form = RoleForm
    inlines = [GroupMappingInline]
    list_display = ("name", "description", "tool_count", "groups", "unknown_tools")
    search_fields = ("name", "description", "group_mappings__group_name")
    list_filter = ("group_mappings__group_name",)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("group_mappings")

    @admin.display(description="tools")
    def tool_count(self, obj: Role) -> int:
        return len(obj.tools)

    @admin.display(description="Okta groups")
    def groups(self, obj: Role) -> str:
        return ", ".join(m.group_name for m in obj.group_mappings.all())

    @admin.display(description="not in registry")
    def unknown_tools(self, obj: Role) -> str:
        unknown = role_unknown_tools(obj)
        return format_html('<strong style="color:#a4281f">{}</strong>', ", ".join(unknown)) if unknown else ""

    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        services.role_save(
            role=obj, actor=request.user, meta=RequestMeta.from_django(request), changed=list(form.changed_data), created=not change
        )

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(role=obj, actor=request.user, meta=RequestMeta.from_django(request))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        meta = RequestMeta.from_django(request)
        instances = formset.save(commit=False)
        for mapping in formset.deleted_objects:
            services.group_mapping_delete(mapping=mapping, actor=request.user, meta=meta)
        for mapping in instances:
            services.group_mapping_save(mapping=mapping, actor=request.user, meta=meta, created=mapping.pk is None)
