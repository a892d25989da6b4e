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



class ClientApproval(models.Model):
    """Whether a client may be used, and who decided. Clients that register themselves (a Client ID
    Metadata Document fetched on first sight, or RFC 7591 registration) start pending and receive
    nothing until approved: by an administrator, or at once when their host is on the allowlist.
    Static clients created by administrators are approved when created; a DOT Application without
    a row is a static registration made outside admin (fixtures, `manage.py shell`)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        CIMD = "cimd", "Client ID Metadata Document"
        DCR = "dcr", "Dynamic registration (RFC 7591)"
        STATIC = "static", "Registered by an administrator"

    application = models.OneToOneField(Application, on_delete=models.CASCADE, related_name="approval")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    # The host of a metadata-document client_id: what the user and the administrator judge.
    domain = models.CharField(max_length=255, blank=True)
    application_type = models.CharField(max_length=16, blank=True, help_text="native or web (RFC 7591 clients).")
    # The redirect URIs the decision was made on. A metadata document that later lists others puts
    # an administrator-approved client back to pending.
    redirect_uris = models.TextField(blank=True)
    allowlisted = models.BooleanField(default=False, help_text="Approved because its host is on the allowlist.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.application.client_id} ({self.status})"

    @property
    def approved(self) -> bool:
        return self.status == self.Status.APPROVED


class AllowedClientHost(models.Model):
    """A host whose metadata-document clients are approved without waiting for an administrator.
    `.example.com` matches the domain and its subdomains (Django's ALLOWED_HOSTS syntax); the
    CIMD_ALLOWED_HOSTS setting adds entries that live in the deployment's configuration."""

    host = models.CharField(max_length=255, unique=True)
    note = models.CharField(max_length=255, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["host"]
        verbose_name = "allowed client host"

    def __str__(self) -> str:
        return self.host
