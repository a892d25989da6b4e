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


class ToolConfirmation(models.Model):
    """A pending confirmation of one destructive tool call: issued when the call was first made
    without one, redeemed (once) by the second call. Bound to the user, the client, the tool and
    the exact arguments; only the token's SHA-256 is stored, so the table cannot be replayed from
    a database read. Stored here rather than in memory so that any replica can redeem it."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="tool_confirmations")
    client_id = models.CharField(max_length=255)
    tool = models.CharField(max_length=64)
    arguments_hash = models.CharField(max_length=64)
    summary = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.tool} for user {self.user_id} ({'used' if self.used_at else 'pending'})"
