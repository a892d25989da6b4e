from __future__ import annotations

from django.db import models


class EventType(models.TextChoices):
    LOGIN_SUCCESS = "login.success", "Login succeeded"
    LOGIN_FAILURE = "login.failure", "Login failed"
    CONSENT_GRANTED = "consent.granted", "Consent granted"
    CONSENT_DENIED = "consent.denied", "Consent denied"
    CONSENT_REUSED = "consent.reused", "Existing consent used"
    CONSENT_EXPIRED = "consent.expired", "Consent expired"
    CONSENT_REVOKED = "consent.revoked", "Consent revoked"
    AUTHORIZATION_DENIED = "authorization.denied", "Authorization request refused"
    TOKEN_ISSUED = "token.issued", "Token issued"
    TOKEN_REFRESHED = "token.refreshed", "Token refreshed"
    TOKEN_REFRESH_DENIED = "token.refresh_denied", "Token refresh refused"
    TOKEN_REVOKED = "token.revoked", "Token revoked"
    TOKEN_REUSE_DETECTED = "token.reuse_detected", "Refresh token reuse detected"
    TOKEN_REJECTED = "token.rejected", "Bearer token rejected"
    CLIENT_REGISTERED = "client.registered", "Client registered"
    CLIENT_CHANGED = "client.changed", "Client changed"
    POLICY_CHANGED = "policy.changed", "Policy changed"
    TOOLS_LISTED = "tools.listed", "Tools listed"
    TOOL_CALL = "tool.call", "Tool call decided"
    TOOL_CALL_COMPLETED = "tool.call.completed", "Tool call completed"
    STEP_UP_REQUIRED = "step_up.required", "Step-up demanded"
    MAINTENANCE = "maintenance", "Maintenance"
    CHAIN_CHECKPOINT = "chain.checkpoint", "Audit chain checkpoint"
    AUDIT_EXPORTED = "audit.exported", "Audit trail exported"


class Decision(models.TextChoices):
    NONE = "", "-"
    ALLOWED = "allowed", "Allowed"
    DENIED = "denied", "Denied"


class AuditEvent(models.Model):
    """One security-relevant event. Rows are only ever inserted (by `audit.services.audit_record`);
    each carries a SHA-256 over its content and the previous row's hash, so an edited or removed row
    breaks the chain that `manage.py audit_verify` checks. The actor is stored by value, not as a
    foreign key, so deleting a user cannot rewrite history (or the hashes)."""

    created = models.DateTimeField(db_index=True)
    event_type = models.CharField(max_length=40, choices=EventType.choices, db_index=True)
    actor_user_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_login = models.CharField(max_length=255, blank=True, db_index=True)
    client_id = models.CharField(max_length=255, blank=True, db_index=True)
    source_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    target = models.CharField(max_length=255, blank=True, db_index=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, db_index=True)
    reason = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    okta_request_id = models.CharField(max_length=100, blank=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["created", "event_type"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event_type} {self.actor_login or '-'} {self.target}".strip()


class AuditChainHead(models.Model):
    """A single row holding the newest hash. Writers lock it (SELECT ... FOR UPDATE) so that
    concurrent inserts form one linear chain."""

    last_hash = models.CharField(max_length=64)
    last_event_id = models.BigIntegerField(null=True)
