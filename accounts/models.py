from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who logged in through Okta. Keyed by the Okta `sub` (the Okta user id), never by
    email: emails change and can be reassigned, the subject cannot."""

    okta_sub = models.CharField(max_length=100, unique=True, null=True, blank=True, verbose_name="Okta subject")
    okta_login = models.CharField(max_length=255, blank=True, db_index=True)
    okta_status = models.CharField(max_length=32, blank=True)
    okta_groups = models.JSONField(default=list, blank=True, help_text="Okta group names at the last sync.")
    okta_group_ids = models.JSONField(default=list, blank=True)
    groups_synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.okta_login or self.username
