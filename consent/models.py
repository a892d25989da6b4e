from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from oauth2_provider.models import Application


class ConsentQuerySet(models.QuerySet["Consent"]):
    def active(self) -> "ConsentQuerySet":
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class Consent(models.Model):
    """A user's approval of one client for a set of scopes, valid until `expires_at` unless revoked.
    Rows are never deleted by the application: revocation and expiry are recorded on the row."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consents")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="consents")
    scopes = models.CharField(max_length=255)
    tools = models.JSONField(default=list, blank=True, help_text="Tools shown on the consent page.")
    redirect_uri = models.CharField(max_length=1024, blank=True)
    granted_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=255, blank=True)
    expiry_recorded = models.BooleanField(default=False)

    objects = ConsentQuerySet.as_manager()

    class Meta:
        ordering = ["-granted_at"]
        indexes = [models.Index(fields=["user", "application", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.user} -> {self.application.client_id} ({self.status})"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"


class LoginSession(models.Model):
    """One authorization (a code redeemed for tokens) and the refresh-token family it starts.
    The family stops refreshing at `ends_at` (login session lifetime, absolute) or as soon as the
    consent it rests on is revoked or expires."""

    token_family = models.UUIDField(unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="login_sessions")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="login_sessions")
    consent = models.ForeignKey(Consent, on_delete=models.CASCADE, related_name="login_sessions")
    code_hash = models.CharField(max_length=64, unique=True)
    started_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"session {self.token_family} ({self.user})"
