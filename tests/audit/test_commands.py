"""audit_export, audit_verify and audit_prune, with good and bad arguments, the database checked
before and after."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEvent, EventType
from audit.selectors import audit_chain_verify
from audit.services import RequestMeta, audit_record, event_hash
from tests.audit.helpers import seed_chain

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- audit_export --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_jsonl_every_row_with_hashes(tmp_path: Path) -> None:
    ids = seed_chain(30)
    target = tmp_path / "audit.jsonl"
    run("audit_export", "--format", "jsonl", "--output", str(target))
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in lines] == ids
    # Each exported row can be checked offline with the same canonical form.
    for line in lines:
        content = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
        assert event_hash(line["prev_hash"], content) == line["hash"]
    # The export is itself recorded, after the rows it exported.
    recorded = AuditEvent.objects.order_by("-id").first()
    assert recorded.event_type == EventType.AUDIT_EXPORTED and recorded.details["rows"] == 30
    assert recorded.user_agent == "manage.py audit_export"


@pytest.mark.django_db
def test_export_csv_window(tmp_path: Path) -> None:
    start = timezone.now() - timedelta(days=10)
    ids = seed_chain(10, start=start, step=timedelta(days=1))
    since = (start + timedelta(days=2)).date().isoformat()
    until = (start + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    target = tmp_path / "audit.csv"
    run("audit_export", "--format", "csv", "--since", since, "--until", until, "--output", str(target))
    rows = list(csv.DictReader(target.open()))
    exported = [int(r["id"]) for r in rows]
    # since is midnight of day 2 (inclusive), until is the exact time of day 5 (exclusive)
    assert exported == ids[2:5]
    assert json.loads(rows[0]["details"]) == {"arguments": {"n": 2}}
    assert rows[0]["hash"] == AuditEvent.objects.get(pk=ids[2]).hash


@pytest.mark.django_db
def test_export_csv_neutralises_formulas() -> None:
    audit_record(
        event_type=EventType.LOGIN_FAILURE, reason='=HYPERLINK("http://evil")', meta=RequestMeta(user_agent="@SUM(1)")
    )
    out = run("audit_export", "--format", "csv")
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["reason"] == '\'=HYPERLINK("http://evil")' and row["user_agent"] == "'@SUM(1)"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args,message",
    [
        (["--format", "xml"], "invalid choice"),
        (["--format", "jsonl", "--since", "yesterday"], "not an ISO 8601"),
        (["--format", "jsonl", "--until", "2026-13-40"], "not an ISO 8601"),
        (["--format", "jsonl", "--since", "2026-02-01", "--until", "2026-01-01"], "--since must be before --until"),
        (["--format", "jsonl", "--output", "/nonexistent-dir/x.jsonl"], "directory does not"),
    ],
)
def test_export_bad_arguments_change_nothing(args: list[str], message: str) -> None:
    seed_chain(3)
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=message):
        run("audit_export", *args)
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_export_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "kept.jsonl"
    target.write_text("precious\n")
    with pytest.raises(CommandError, match="exists"):
        run("audit_export", "--format", "jsonl", "--output", str(target))
    assert target.read_text() == "precious\n"


class _Sink(io.TextIOBase):
    def __init__(self) -> None:
        self.size = 0

    def write(self, s: str) -> int:
        self.size += len(s)
        return len(s)


def _export_peak(fmt: str) -> tuple[int, int]:
    from audit.services import audit_export

    sink = _Sink()
    tracemalloc.start()
    try:
        audit_export(out=sink, fmt=fmt, meta=RequestMeta())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, sink.size


@pytest.mark.django_db
def test_export_streams_in_flat_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 rows are written with the memory of one chunk, not of the table: the queryset is
    iterated in chunks and never materialised."""
    seed_chain(2_000)
    small_peak, _ = _export_peak("jsonl")
    seed_chain(18_000)
    materialised: list[int] = []
    original = QuerySet._fetch_all

    def spy(self: QuerySet) -> None:
        if self.model is AuditEvent:
            materialised.append(1)
        original(self)

    monkeypatch.setattr(QuerySet, "_fetch_all", spy)
    peak, written = _export_peak("jsonl")
    assert not materialised
    assert written > 20_000 * 400
    # Ten times the rows, about the same peak (one chunk); materialised, 20,000 rows take ~40 MB.
    assert peak < small_peak * 1.3, (peak, small_peak)
    assert peak < 4 * 1024 * 1024, peak


# --- audit_verify --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_intact_and_broken() -> None:
    ids = seed_chain(40)
    assert run("audit_verify").strip() == "audit chain intact: 40 row(s) checked from genesis"
    AuditEvent.objects.filter(pk=ids[17]).update(details={"arguments": {"n": "edited"}})
    with pytest.raises(CommandError) as failure:
        run("audit_verify")
    assert f"row #{ids[17]}" in str(failure.value) and "content changed" in str(failure.value)
    assert "17 row(s) checked" in str(failure.value)


@pytest.mark.django_db(transaction=True)
def test_verify_exit_code_from_the_shell() -> None:
    """The command as cron or CI runs it: non-zero exit and the bad row on stderr."""
    ids = seed_chain(5)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url()}
    ok = subprocess.run(
        [sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "5 row(s) checked" in ok.stdout, ok.stderr
    AuditEvent.objects.filter(pk=ids[2]).update(target="edited")
    bad = subprocess.run(
        [sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and f"row #{ids[2]}" in bad.stderr and "Traceback" not in bad.stderr


def _database_url() -> str:
    from tests.conftest import _server_database_url

    return _server_database_url()


# --- audit_prune ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_prune_keeps_the_rest_verifiable() -> None:
    start = timezone.now() - timedelta(days=100)
    ids = seed_chain(10, start=start, step=timedelta(days=10))
    cut = start + timedelta(days=45)  # rows 0..4 are older
    out = run("audit_prune", "--before", cut.isoformat())
    assert f"pruned 5 row(s) up to #{ids[4]}" in out
    assert list(AuditEvent.objects.filter(pk__in=ids).order_by("id").values_list("id", flat=True)) == ids[5:]
    checkpoint = AuditEvent.objects.get(event_type=EventType.CHAIN_CHECKPOINT)
    assert checkpoint.details["pruned_through_id"] == ids[4] and checkpoint.details["pruned_rows"] == 5
    report = audit_chain_verify()
    assert report.ok and report.rows_checked == 6 and report.start.startswith(f"checkpoint #{checkpoint.pk}")
    assert "from checkpoint" in run("audit_verify")

    # Safe to run twice: nothing older is left, nothing changes.
    before = list(AuditEvent.objects.values_list("id", "hash"))
    assert run("audit_prune", "--before", cut.isoformat()).strip() == "nothing to prune"
    assert list(AuditEvent.objects.values_list("id", "hash")) == before

    # The chain goes on after the checkpoint, and tampering after a prune is still found.
    audit_record(event_type=EventType.MAINTENANCE, meta=RequestMeta())
    assert audit_chain_verify().rows_checked == 7
    AuditEvent.objects.filter(pk=ids[6]).update(reason="edited")
    assert audit_chain_verify().bad_event_id == ids[6]


@pytest.mark.django_db
def test_prune_then_removing_the_first_kept_row_is_found() -> None:
    start = timezone.now() - timedelta(days=30)
    ids = seed_chain(6, start=start, step=timedelta(days=1))
    run("audit_prune", "--before", (start + timedelta(days=2, hours=1)).isoformat())
    assert audit_chain_verify().ok
    # Removing the oldest remaining row: what is left no longer continues from the checkpoint's cut.
    AuditEvent.objects.filter(pk=ids[3]).delete()
    report = audit_chain_verify()
    assert report.bad_event_id == ids[4] and report.reason.startswith("link broken")


@pytest.mark.django_db
def test_prune_everything_old() -> None:
    ids = seed_chain(4, start=timezone.now() - timedelta(days=9))
    run("audit_prune", "--before", timezone.now().isoformat())
    assert not AuditEvent.objects.filter(pk__in=ids).exists()
    assert AuditEvent.objects.get().event_type == EventType.CHAIN_CHECKPOINT
    assert audit_chain_verify().ok


@pytest.mark.django_db
def test_prune_refuses_the_future_and_bad_dates() -> None:
    seed_chain(3, start=timezone.now() - timedelta(days=9))
    before = list(AuditEvent.objects.values_list("id", "hash"))
    with pytest.raises(CommandError, match="in the future"):
        run("audit_prune", "--before", (timezone.now() + timedelta(days=1)).date().isoformat())
    with pytest.raises(CommandError, match="not an ISO 8601"):
        run("audit_prune", "--before", "last week")
    with pytest.raises(CommandError, match="required"):
        run("audit_prune")
    assert list(AuditEvent.objects.values_list("id", "hash")) == before


@pytest.mark.django_db
def test_prune_refuses_a_broken_chain() -> None:
    ids = seed_chain(5, start=timezone.now() - timedelta(days=9))
    AuditEvent.objects.filter(pk=ids[1]).update(details={"tampered": True})
    with pytest.raises(CommandError, match=f"does not verify.*row #{ids[1]}"):
        run("audit_prune", "--before", timezone.now().isoformat())
    assert AuditEvent.objects.filter(pk__in=ids).count() == 5


@pytest.mark.django_db
def test_prune_refuses_to_remove_the_newest_checkpoint() -> None:
    ids = seed_chain(5, start=timezone.now() - timedelta(days=50), step=timedelta(days=10))
    run("audit_prune", "--before", (timezone.now() - timedelta(days=25)).isoformat())
    checkpoint = AuditEvent.objects.get(event_type=EventType.CHAIN_CHECKPOINT)
    seed_chain(2)
    before = list(AuditEvent.objects.values_list("id", "hash"))
    with pytest.raises(CommandError, match=f"checkpoint #{checkpoint.pk}"):
        run("audit_prune", "--before", timezone.now().isoformat())
    assert list(AuditEvent.objects.values_list("id", "hash")) == before
    assert audit_chain_verify().ok and ids
