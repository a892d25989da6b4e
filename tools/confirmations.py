"""Confirmation tokens for destructive tools: the only writer of `ToolConfirmation`.

A destructive tool called without confirmation (and without a client that can ask its user through
MCP elicitation) changes nothing: it returns a summary of what would change and a token. The token
is bound to the user, the client, the tool and the exact arguments; it is single use and expires
after `TOOL_CONFIRMATION_SECONDS`. Only its SHA-256 is stored, in the database, so that any replica
can redeem it. The audit rows of both calls are the tool-call rows written around each call (the
first one's outcome is `confirmation_required`; the token itself is redacted from the arguments)."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from consent.tokens import Principal
from tools.models import ToolConfirmation

# Long enough that a guess never lands, and shaped so the audit trail's redaction catches it by value.
TOKEN_BYTES = 32


class ConfirmationRefused(Exception):
    """The confirmation presented cannot authorise this call; nothing was changed."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class IssuedConfirmation:
    token: str
    expires_at: datetime


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def arguments_digest(*, tool: str, arguments: dict[str, Any]) -> str:
    """The canonical form of a call: the tool and its validated arguments, without the token."""
    canonical = json.dumps({"tool": tool, "arguments": arguments}, sort_keys=True, separators=(",", ":"), default=str)
    return _digest(canonical)


def confirmation_issue(*, principal: Principal, tool: str, arguments: dict[str, Any], summary: str) -> IssuedConfirmation:
    """Store a new pending confirmation and return the raw token (shown once, to the caller)."""
    now = timezone.now()
    token = "okc_" + secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + timedelta(seconds=settings.TOOL_CONFIRMATION_SECONDS)
    with transaction.atomic():
        # Housekeeping: rows past their use are kept an hour for inspection, then dropped.
        ToolConfirmation.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()
        ToolConfirmation.objects.create(
            token_hash=_digest(token),
            user_id=principal.user_id,
            client_id=principal.client_id,
            tool=tool,
            arguments_hash=arguments_digest(tool=tool, arguments=arguments),
            summary=summary[:2000],
            expires_at=expires_at,
        )
    return IssuedConfirmation(token=token, expires_at=expires_at)


def _checked(row: ToolConfirmation | None, *, principal: Principal, tool: str, arguments: dict[str, Any]) -> ToolConfirmation:
    now = timezone.now()
    if row is None or row.user_id != principal.user_id or row.client_id != principal.client_id:
        # Someone else's token looks exactly like no token at all.
        raise ConfirmationRefused(
            "confirmation refused: this token was not issued to you; call the tool without a confirmation to get one",
            code="confirmation_invalid",
        )
    if row.used_at is not None:
        raise ConfirmationRefused(
            "confirmation refused: this token was already used; call the tool without a confirmation to get a new one",
            code="confirmation_used",
        )
    if row.expires_at <= now:
        raise ConfirmationRefused(
            "confirmation refused: this token has expired; call the tool without a confirmation to get a new one",
            code="confirmation_expired",
        )
    if row.tool != tool:
        raise ConfirmationRefused(
            f"confirmation refused: this token confirms {row.tool}, not {tool}", code="confirmation_mismatch"
        )
    if row.arguments_hash != arguments_digest(tool=tool, arguments=arguments):
        raise ConfirmationRefused(
            f"confirmation refused: this token confirms {row.tool} with other arguments, not this call",
            code="confirmation_mismatch",
        )
    return row


def confirmation_check(*, principal: Principal, tool: str, arguments: dict[str, Any], token: str) -> None:
    """Raise ConfirmationRefused unless `confirmation_redeem` would accept the token now (it does
    not use it up): lets a tool refuse a bad token before it reads or says anything."""
    _checked(ToolConfirmation.objects.filter(token_hash=_digest(token)).first(), principal=principal, tool=tool, arguments=arguments)


def confirmation_redeem(*, principal: Principal, tool: str, arguments: dict[str, Any], token: str) -> ToolConfirmation:
    """Use a confirmation up: it must exist, be unused and unexpired, and have been issued to this
    user and client for this tool with these exact arguments. Raises ConfirmationRefused otherwise.
    A token presented by anyone else, or for other arguments, is refused without being used up,
    so a stolen or mistyped token cannot cancel the real one. Single use holds across replicas:
    the row is locked while it is checked and marked."""
    with transaction.atomic():
        row = ToolConfirmation.objects.select_for_update().filter(token_hash=_digest(token)).first()
        row = _checked(row, principal=principal, tool=tool, arguments=arguments)
        row.used_at = timezone.now()
        row.save(update_fields=["used_at"])
    return row


def confirmation_cancel(*, principal: Principal, token: str) -> None:
    """Use up a pending confirmation its user declined, so that it cannot confirm the call later.
    A token of anyone else is left alone."""
    ToolConfirmation.objects.filter(
        token_hash=_digest(token), user_id=principal.user_id, client_id=principal.client_id, used_at__isnull=True
    ).update(used_at=timezone.now())
