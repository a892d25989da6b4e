"""Clients that register themselves, and the decisions about them.

A client whose client_id is an https URL (a Client ID Metadata Document) or that used RFC 7591
registration is created by django-oauth-toolkit on its own; here it gets a ClientApproval that
starts pending, and nothing is issued to it until it is approved: by an administrator (the admin
actions call `client_approve` / `client_reject`), or at once when its host is on the allowlist
(AllowedClientHost rows plus the CIMD_ALLOWED_HOSTS setting). The OAuth validator asks `client_gate`
every time it loads a client, so the authorization endpoint, the consent form and the token
endpoint all apply the same decision.

Every write here is one transaction with its audit row: client.registered when a client first
appears, client.changed for each decision, policy.changed for the allowlist."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http.request import validate_host
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from oauth2_provider.settings import oauth2_settings

from audit.models import Decision, EventType
from audit.services import RequestMeta, audit_record
from consent.models import AllowedClientHost, ClientApproval, Consent, LoginSession
from consent.services import ConsentError, consent_revoke

Source = ClientApproval.Source
Status = ClientApproval.Status


# --- reads ---------------------------------------------------------------------------------------


def client_domain(client_id: str) -> str:
    """The host of a metadata-document client_id ("" for any other client_id)."""
    if client_id[:8].lower() != "https://":
        return ""
    return (urlsplit(client_id).hostname or "").lower()


def client_host_allowlisted(host: str) -> bool:
    """Whether `host` matches an allowlist entry (admin-managed rows or CIMD_ALLOWED_HOSTS)."""
    if not host:
        return False
    patterns = list(AllowedClientHost.objects.values_list("host", flat=True))
    patterns += [p for p in oauth2_settings.CIMD_ALLOWED_HOSTS or [] if p]
    # "*" would approve every client on the internet: that is open registration, not an allowlist.
    return validate_host(host, [p for p in patterns if p.strip(".") and p != "*"])


def client_approval_get(*, client_id: str) -> ClientApproval | None:
    return (
        ClientApproval.objects.select_related("application", "decided_by")
        .filter(application__client_id=client_id)
        .first()
    )


def clients_pending_count() -> int:
    return ClientApproval.objects.filter(status=Status.PENDING).count()


@dataclass(frozen=True)
class ClientStanding:
    """What the consent page and the awaiting-approval page say about a client."""

    domain: str
    status: str  # approved | pending | rejected
    approved_via: str  # allowlist | admin | static | ""
    decided_by: str


def client_standing(application: Application) -> ClientStanding:
    approval = ClientApproval.objects.select_related("decided_by").filter(application=application).first()
    domain = client_domain(application.client_id)
    if approval is None:
        return ClientStanding(domain=domain, status=Status.APPROVED, approved_via="static", decided_by="")
    via = ""
    if approval.status == Status.APPROVED:
        via = "allowlist" if approval.allowlisted else ("static" if approval.source == Source.STATIC else "admin")
    decided_by = ""
    if approval.decided_by is not None:
        decided_by = getattr(approval.decided_by, "okta_login", "") or approval.decided_by.get_username()
    return ClientStanding(
        domain=approval.domain or domain, status=approval.status, approved_via=via, decided_by=decided_by
    )


# --- the gate ------------------------------------------------------------------------------------


def _uris(value: str) -> list[str]:
    return sorted(set(value.split()))


def _record(
    *,
    event_type: EventType,
    approval: ClientApproval,
    actor: Any,
    meta: RequestMeta,
    reason: str = "",
    decision: Decision | str = Decision.NONE,
    **details: Any,
) -> None:
    audit_record(
        event_type=event_type,
        actor=actor,
        client_id=approval.application.client_id,
        target=f"client:{approval.application.client_id}"[:255],
        decision=decision,
        reason=reason,
        details={
            "name": approval.application.name,
            "source": approval.source,
            "domain": approval.domain,
            "status": approval.status,
            "allowlisted": approval.allowlisted,
            **details,
        },
        meta=meta,
    )


def _first_sight(*, application: Application, meta: RequestMeta) -> ClientApproval:
    source = Source.CIMD if application.registration_source == Application.RegistrationSource.CIMD else Source.DCR
    domain = client_domain(application.client_id) if source == Source.CIMD else ""
    allow = source == Source.CIMD and client_host_allowlisted(domain)
    now = timezone.now()
    with transaction.atomic():
        approval = ClientApproval.objects.create(
            application=application,
            source=source,
            domain=domain,
            status=Status.APPROVED if allow else Status.PENDING,
            allowlisted=allow,
            decided_at=now if allow else None,
            redirect_uris=" ".join(_uris(application.redirect_uris)),
        )
        _record(
            event_type=EventType.CLIENT_REGISTERED,
            approval=approval,
            actor=None,
            meta=meta,
            reason="host on the client allowlist" if allow else "awaiting approval by an administrator",
            redirect_uris=_uris(application.redirect_uris),
        )
    return approval


def client_gate(*, application: Application, meta: RequestMeta) -> bool:
    """Whether the OAuth flows may use `application` now. Records a self-registered client on first
    sight (approved at once when its host is allowlisted, pending otherwise) and keeps allowlist
    approvals in step with the allowlist and metadata documents."""
    approval = ClientApproval.objects.filter(application=application).first()
    self_registered = application.registration_source in (
        Application.RegistrationSource.CIMD,
        Application.RegistrationSource.DCR,
    )
    if approval is None:
        if not self_registered:
            return True
        try:
            approval = _first_sight(application=application, meta=meta)
        except IntegrityError:
            # A concurrent request recorded it first.
            approval = ClientApproval.objects.get(application=application)
    if approval.source == Source.CIMD:
        approval = _cimd_recheck(approval=approval, application=application, actor=None, meta=meta)
    return approval.status == Status.APPROVED


def _cimd_recheck(
    *, approval: ClientApproval, application: Application, actor: Any, meta: RequestMeta
) -> ClientApproval:
    """A metadata document is re-fetched when its cache expires, and the allowlist can change:
    an allowlisted host approves a waiting client; a host taken off the allowlist, or a document
    that now lists other redirect URIs than an administrator approved, sends it back to pending,
    and what it held (consents, tokens, login sessions) is revoked."""
    listed = client_host_allowlisted(approval.domain)
    uris = _uris(application.redirect_uris)
    changed_uris = uris != _uris(approval.redirect_uris)
    new_status, reason = approval.status, ""
    if approval.status == Status.PENDING and listed:
        new_status, reason = Status.APPROVED, "host added to the client allowlist"
    elif approval.status == Status.APPROVED and approval.allowlisted and not listed:
        new_status, reason = Status.PENDING, "host no longer on the client allowlist"
    elif approval.status == Status.APPROVED and not approval.allowlisted and changed_uris:
        new_status, reason = Status.PENDING, "metadata document lists other redirect URIs than were approved"
    elif changed_uris:
        reason = "metadata document lists other redirect URIs"
    if not reason:
        return approval
    with transaction.atomic():
        approval = ClientApproval.objects.select_for_update().select_related("application").get(pk=approval.pk)
        before = {"status": approval.status, "redirect_uris": _uris(approval.redirect_uris)}
        approval.status = new_status
        approval.redirect_uris = " ".join(uris)
        if new_status != before["status"]:
            approval.allowlisted = new_status == Status.APPROVED
            approval.decided_by = None
            approval.decided_at = timezone.now()
            approval.reason = reason
        approval.save()
        _record(
            event_type=EventType.CLIENT_CHANGED,
            approval=approval,
            actor=actor,
            meta=meta,
            reason=reason,
            before=before,
            redirect_uris=uris,
        )
        if before["status"] == Status.APPROVED and new_status == Status.PENDING:
            consent_revoke(application=approval.application, reason=reason, actor=actor, meta=meta)
    return approval


# --- registrations -------------------------------------------------------------------------------


class ClientMetadataError(ConsentError):
    """An RFC 7591 registration that breaks a rule; `error` is the RFC 7591 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _loopback_host(uri: str) -> bool:
    host = urlsplit(uri).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_metadata_check(*, metadata: dict[str, Any]) -> str:
    """The application_type of an RFC 7591 registration, checked against its redirect URIs as the
    MCP specification asks (OpenID Connect Registration §2): "native" clients (desktop, CLI)
    redirect to http on a loopback address; "web" clients, the default when the field is absent,
    redirect to https on a non-loopback host. Anything else is refused before a row exists."""
    from consent.oauth_validator import redirect_uri_allowed

    application_type = metadata.get("application_type", "web")
    if application_type not in ("native", "web"):
        raise ClientMetadataError("invalid_client_metadata", 'application_type must be "native" or "web"')
    uris = metadata.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise ClientMetadataError("invalid_redirect_uri", "redirect_uris must be a non-empty array of strings")
    bad = [u for u in uris if not redirect_uri_allowed(u)]
    if bad:
        raise ClientMetadataError(
            "invalid_redirect_uri", "redirect URIs must be https, or http to a loopback address: " + ", ".join(bad)
        )
    if application_type == "native":
        wrong = [u for u in uris if urlsplit(u).scheme != "http" or not _loopback_host(u)]
        if wrong:
            raise ClientMetadataError(
                "invalid_redirect_uri",
                'application_type "native" needs loopback redirect URIs (http://127.0.0.1, http://[::1] or '
                "http://localhost, any port): " + ", ".join(wrong),
            )
    else:
        wrong = [u for u in uris if urlsplit(u).scheme != "https" or _loopback_host(u)]
        if wrong:
            raise ClientMetadataError(
                "invalid_redirect_uri",
                'application_type "web" (the default) needs https redirect URIs on a non-loopback host; '
                'a desktop or command-line client registers with application_type "native": ' + ", ".join(wrong),
            )
    return application_type


def client_register_dcr(*, application: Application, application_type: str, meta: RequestMeta) -> ClientApproval:
    """Called in the registration request's transaction, right after django-oauth-toolkit created
    the client: it waits for an administrator."""
    with transaction.atomic():
        approval = ClientApproval.objects.create(
            application=application,
            source=Source.DCR,
            application_type=application_type,
            status=Status.PENDING,
            redirect_uris=" ".join(_uris(application.redirect_uris)),
        )
        _record(
            event_type=EventType.CLIENT_REGISTERED,
            approval=approval,
            actor=None,
            meta=meta,
            reason="awaiting approval by an administrator",
            application_type=application_type,
            redirect_uris=_uris(application.redirect_uris),
            client_type=application.client_type,
        )
    return approval


# Fields of DOT's Application an administrator may change, and what the audit row shows of them.
_AUDITED_FIELDS = (
    "name",
    "client_id",
    "client_type",
    "authorization_grant_type",
    "redirect_uris",
    "post_logout_redirect_uris",
    "allowed_origins",
    "skip_authorization",
    "algorithm",
    "user",
)


def _field_value(application: Application, name: str) -> Any:
    value = getattr(application, name + "_id" if name == "user" else name)
    return value if isinstance(value, (str, int, bool, type(None))) else str(value)


def client_update(*, application: Application, actor: Any, meta: RequestMeta) -> list[str]:
    """An administrator's change to a client (the admin change form). Returns the changed fields."""
    with transaction.atomic():
        stored = Application.objects.select_for_update().get(pk=application.pk)
        changes = {
            f: {"from": _field_value(stored, f), "to": _field_value(application, f)}
            for f in _AUDITED_FIELDS
            if _field_value(stored, f) != _field_value(application, f)
        }
        # The secret never travels through this form (see consent.client_admin).
        application.client_secret = stored.client_secret
        application.hash_client_secret = stored.hash_client_secret
        application.save()
        approval = ClientApproval.objects.filter(application=application).first()
        if approval is not None and "redirect_uris" in changes:
            approval.redirect_uris = " ".join(_uris(application.redirect_uris))
            approval.save(update_fields=["redirect_uris"])
        if changes:
            audit_record(
                event_type=EventType.CLIENT_CHANGED,
                actor=actor,
                client_id=application.client_id,
                target=f"client:{application.client_id}"[:255],
                reason="changed by an administrator",
                details={"changes": changes},
                meta=meta,
            )
    return sorted(changes)


def client_secret_replace(*, application: Application, actor: Any, meta: RequestMeta) -> str:
    """A new secret for a confidential client (the old one stops working), returned in clear for
    the one time it is shown."""
    from oauth2_provider.generators import generate_client_secret

    if application.client_type != Application.CLIENT_CONFIDENTIAL:
        raise ConsentError(f"{application.client_id} is a public client: it has no secret")
    secret = generate_client_secret()
    with transaction.atomic():
        application.client_secret = secret
        application.hash_client_secret = True
        application.save(update_fields=["client_secret", "hash_client_secret"])
        audit_record(
            event_type=EventType.CLIENT_CHANGED,
            actor=actor,
            client_id=application.client_id,
            target=f"client:{application.client_id}"[:255],
            reason="client secret replaced by an administrator",
            details={"credential": "replaced"},
            meta=meta,
        )
    return secret


def _decide(
    *, applications: Iterable[Application], status: str, actor: Any, reason: str, meta: RequestMeta
) -> list[Application]:
    decided = []
    now = timezone.now()
    for application in applications:
        approval = ClientApproval.objects.select_for_update().filter(application=application).first()
        if approval is None:
            source = {
                Application.RegistrationSource.CIMD: Source.CIMD,
                Application.RegistrationSource.DCR: Source.DCR,
            }.get(application.registration_source, Source.STATIC)
            approval = ClientApproval(
                application=application, source=source, domain=client_domain(application.client_id)
            )
        elif approval.status == status:
            continue
        before = approval.status if approval.pk else ""
        approval.status = status
        approval.allowlisted = False
        approval.decided_by = actor
        approval.decided_at = now
        approval.reason = reason[:255]
        approval.redirect_uris = " ".join(_uris(application.redirect_uris))
        approval.save()
        _record(
            event_type=EventType.CLIENT_CHANGED,
            approval=approval,
            actor=actor,
            meta=meta,
            reason=reason,
            decision=Decision.ALLOWED if status == Status.APPROVED else Decision.DENIED,
            before={"status": before},
            redirect_uris=_uris(application.redirect_uris),
        )
        decided.append(application)
    return decided


def client_approve(*, applications: Iterable[Application], actor: Any, meta: RequestMeta) -> int:
    """Approve clients (the admin action). Already approved ones are left as they are."""
    with transaction.atomic():
        return len(
            _decide(
                applications=applications, status=Status.APPROVED, actor=actor, reason=f"approved by {actor}", meta=meta
            )
        )


def client_reject(*, applications: Iterable[Application], actor: Any, meta: RequestMeta) -> int:
    """Reject clients (the admin action): they are refused from now on, and whatever they were
    given before (consents, tokens, login sessions) is revoked in the same transaction."""
    with transaction.atomic():
        rejected = _decide(
            applications=applications, status=Status.REJECTED, actor=actor, reason=f"rejected by {actor}", meta=meta
        )
        for application in rejected:
            consent_revoke(application=application, reason="client rejected", actor=actor, meta=meta)
    return len(rejected)


# --- the allowlist -------------------------------------------------------------------------------


def client_host_pattern(host: str) -> str:
    """The allowlist entry for `host` (lower case), or ConsentError for anything that is not a host
    name or a leading-dot domain."""
    value = host.strip().lower()
    bare = value.removeprefix(".")
    labels = bare.split(".")
    if (
        not bare
        or len(value) > 253
        or len(labels) < 2
        or not all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
        or any(label.startswith("-") or label.endswith("-") for label in labels)
    ):
        raise ConsentError(
            f"{host!r} is not a host name: use a name such as mcp.example.com, or .example.com for the domain "
            "and its subdomains"
        )
    return value


def client_host_allow(*, host: str, note: str, actor: Any, meta: RequestMeta) -> AllowedClientHost:
    pattern = client_host_pattern(host)
    with transaction.atomic():
        if AllowedClientHost.objects.filter(host=pattern).exists():
            raise ConsentError(f"{pattern} is already on the allowlist")
        entry = AllowedClientHost.objects.create(host=pattern, note=note[:255], added_by=actor)
        audit_record(
            event_type=EventType.POLICY_CHANGED,
            actor=actor,
            target=f"client_allowlist:{pattern}",
            reason="host added to the client allowlist",
            details={"host": pattern, "note": note[:255]},
            meta=meta,
        )
    return entry


def client_host_disallow(*, entry: AllowedClientHost, actor: Any, meta: RequestMeta) -> None:
    """Take a host off the allowlist. The clients it approved go back to pending, and what they
    held is revoked, in the same transaction."""
    with transaction.atomic():
        deleted, _ = AllowedClientHost.objects.filter(pk=entry.pk).delete()
        if not deleted:
            return
        audit_record(
            event_type=EventType.POLICY_CHANGED,
            actor=actor,
            target=f"client_allowlist:{entry.host}",
            reason="host removed from the client allowlist",
            details={"host": entry.host},
            meta=meta,
        )
        approved_by_list = ClientApproval.objects.select_related("application").filter(
            source=Source.CIMD, status=Status.APPROVED, allowlisted=True
        )
        for approval in approved_by_list:
            _cimd_recheck(approval=approval, application=approval.application, actor=actor, meta=meta)


# --- cleanup -------------------------------------------------------------------------------------


def clients_clear_stale(*, meta: RequestMeta) -> int:
    """For clear_expired: delete self-registered clients that were never used and are not waited
    for: rejected ones, and pending ones older than CLIENT_PENDING_MAX_AGE_SECONDS. A client that
    ever received a consent, a token or a login session is kept (its history is evidence), as is
    every static client. Returns how many were deleted; one client.changed row each."""
    cutoff = timezone.now() - timedelta(seconds=settings.CLIENT_PENDING_MAX_AGE_SECONDS)
    with transaction.atomic():
        candidates = list(
            ClientApproval.objects.select_for_update()
            .select_related("application")
            .exclude(source=Source.STATIC)
            .filter(Q(status=Status.REJECTED) | Q(status=Status.PENDING, created_at__lt=cutoff))
        )
        removed = 0
        for approval in candidates:
            application = approval.application
            used = (
                Consent.objects.filter(application=application).exists()
                or LoginSession.objects.filter(application=application).exists()
                or AccessToken.objects.filter(application=application, user__isnull=False).exists()
            )
            if used:
                continue
            _record(
                event_type=EventType.CLIENT_CHANGED,
                approval=approval,
                actor=None,
                meta=meta,
                reason="rejected client removed"
                if approval.status == Status.REJECTED
                else "stale pending client removed",
                removed=True,
                created_at=approval.created_at.isoformat(),
            )
            # The application's registration access token (RFC 7591) and approval go with it.
            application.delete()
            removed += 1
    return removed
