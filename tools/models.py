from __future__ import annotations

from django.db import models


class Role(models.Model):
    """A set of tools, granted to the members of the Okta groups mapped to it."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    tools = models.JSONField(default=list, blank=True, help_text="Tool names from the registry.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GroupMapping(models.Model):
    """Okta group -> role. With an Okta group id the match is by id only (a group renamed in Okta
    keeps its grants and a new group that takes the old name does not inherit them); without one,
    by exact group name."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="group_mappings")
    group_name = models.CharField(max_length=255)
    okta_group_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["role__name", "group_name"]
        constraints = [models.UniqueConstraint(fields=["role", "group_name"], name="unique_role_group")]

    def __str__(self) -> str:
        return f"{self.group_name} -> {self.role.name}"
