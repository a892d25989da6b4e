from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.services import RequestMeta
from consent.services import tokens_clear_expired


class Command(BaseCommand):
    help = (
        "For cron: remove expired authorization codes, expired and revoked tokens (revoked refresh tokens "
        "once past their lifetime), ended login sessions, and record expired consents; one audit row sums "
        "it up. Safe to run twice."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        summary = tokens_clear_expired(meta=RequestMeta.for_command("clear_expired"))
        self.stdout.write(str(summary))
