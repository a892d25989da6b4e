"""Forms of the tools admin: the role form (tools as a registry checklist), the group-mapping inline
form, and the effective-access query form."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings

from accounts.models import User
from tools.models import GroupMapping, Role
from tools.registry import tool_choices

OKTA_GROUP_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")


def scope_choices() -> list[tuple[str, str]]:
    return [(name, f"{name}: {text}") for name, text in settings.OAUTH2_PROVIDER["SCOPES"].items()]


def split_list(value: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


class RoleForm(forms.ModelForm):
    # Choices come from the registry only: a stored name that is no longer registered has no box, so
    # it is dropped on the next save (and the admin warns about it until then).
    tools = forms.MultipleChoiceField(
        choices=tool_choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Read tools need the mcp.read scope; write tools also need mcp.write (the client must step up).",
    )

    class Meta:
        model = Role
        fields = ("name", "description", "tools")


class GroupMappingForm(forms.ModelForm):
    class Meta:
        model = GroupMapping
        fields = ("group_name", "okta_group_id")
        help_texts = {
            "group_name": "The Okta group name, exactly as in Okta.",
            "okta_group_id": "Optional. When set, the group matches by this id only (a renamed group keeps the "
            "grant; another group taking the old name does not get it).",
        }

    def clean_okta_group_id(self) -> str:
        value = (self.cleaned_data.get("okta_group_id") or "").strip()
        if value and not OKTA_GROUP_ID.match(value):
            raise forms.ValidationError("An Okta group id has letters and digits only, like 00g1a2b3c4d5e6f7g8h9.")
        return value


class EffectiveAccessForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=User.objects.order_by("okta_login", "username"),
        required=False,
        help_text="Judged on the groups stored at the user's last login or token refresh.",
    )
    groups = forms.CharField(
        required=False,
        max_length=2000,
        label="Okta group names",
        help_text="Or: a comma-separated list of Okta group names.",
    )
    group_ids = forms.CharField(
        required=False,
        max_length=2000,
        label="Okta group ids",
        help_text="Optional, comma-separated: needed for mappings that match by id.",
    )
    scopes = forms.MultipleChoiceField(
        choices=scope_choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The token's scopes. None ticked: the client's default scopes.",
    )

    def clean_groups(self) -> list[str]:
        return split_list(self.cleaned_data.get("groups") or "")

    def clean_group_ids(self) -> list[str]:
        ids = split_list(self.cleaned_data.get("group_ids") or "")
        bad = [i for i in ids if not OKTA_GROUP_ID.match(i)]
        if bad:
            raise forms.ValidationError(f"Not an Okta group id: {', '.join(bad)}")
        return ids

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        has_user = data.get("user") is not None
        has_groups = bool(data.get("groups") or data.get("group_ids"))
        if has_user and has_groups:
            raise forms.ValidationError("Pick a user or type groups, not both.")
        if not has_user and not has_groups and not self.errors:
            raise forms.ValidationError("Pick a user or type at least one Okta group.")
        return data
