from __future__ import annotations

from datetime import UTC, datetime, time

from django.core.management.base import CommandError
from django.utils.dateparse import parse_date, parse_datetime


def parse_when(value: str, option: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or date-time; without an offset it is taken as UTC."""
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = datetime.combine(day, time.min) if day else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            f"{option}: {value!r} is not an ISO 8601 date or date-time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)"
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
