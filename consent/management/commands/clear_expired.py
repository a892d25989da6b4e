from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.services import RequestMeta
from consent.clients import clients_clear_stale
from consent.services import tokens_clear_expired


class Command(BaseCommand):
    help = (
        "For cron: remove expired authorization codes, expired and revoked tokens (revoked refresh tokens "
        "once past their lifetime), ended login sessions, and record expired consents; one audit row sums "
        "it up; remove self-registered clients that were rejected or waited too long for approval. Safe to run "
        "twice."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        meta = RequestMeta.for_command("clear_expired")
        summary = tokens_clear_expired(meta=meta)
        self.stdout.write(str(summary))
        removed = clients_clear_stale(meta=meta)
        if removed:
            self.stdout.write(f"removed {removed} rejected or stale pending client(s)")
