"""The audit writer and the hash chain: every kind of tampering is found and named, secrets are
redacted before they are stored or logged, and concurrent writers keep the chain linear."""

from __future__ import annotations

import hashlib
import json
import logging
import threading

import pytest
from django.db import connection, transaction

from audit.models import AuditChainHead, AuditEvent, Decision, EventType
from audit.selectors import audit_chain_verify
from audit.services import REDACTED, RequestMeta, audit_record, redact
from tests.audit.helpers import seed_chain


def _record(n: int = 1, **kwargs) -> list[AuditEvent]:
    return [
        audit_record(event_type=EventType.MAINTENANCE, target=f"t{i}", details={"i": i}, meta=RequestMeta(), **kwargs)
        for i in range(n)
    ]


@pytest.mark.django_db
def test_rows_chain_and_verify() -> None:
    events = _record(5)
    assert events[0].prev_hash == "0" * 64
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    head = AuditChainHead.objects.get(pk=1)
    assert head.last_hash == events[-1].hash and head.last_event_id == events[-1].pk
    report = audit_chain_verify()
    assert report.ok and report.rows_checked == 5 and report.start == "genesis"


@pytest.mark.django_db
def test_empty_trail_verifies() -> None:
    assert audit_chain_verify().ok and audit_chain_verify().rows_checked == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field,value",
    [
        ("details", {"i": 99}),
        ("actor_login", "mallory"),
        ("decision", Decision.DENIED),
        ("reason", "x"),
        ("duration_ms", 7),
    ],
)
def test_changed_content_names_the_row(field: str, value: object) -> None:
    events = _record(6)
    AuditEvent.objects.filter(pk=events[3].pk).update(**{field: value})
    report = audit_chain_verify()
    assert not report.ok
    assert report.bad_event_id == events[3].pk and report.reason.startswith("content changed")
    assert report.rows_checked == 3


@pytest.mark.django_db
def test_changed_time_names_the_row() -> None:
    events = _record(3)
    AuditEvent.objects.filter(pk=events[1].pk).update(created=events[1].created.replace(year=2020))
    assert audit_chain_verify().bad_event_id == events[1].pk


@pytest.mark.django_db
def test_removed_row_breaks_the_next_link() -> None:
    events = _record(5)
    AuditEvent.objects.filter(pk=events[2].pk).delete()
    report = audit_chain_verify()
    assert report.bad_event_id == events[3].pk and report.reason.startswith("link broken")


@pytest.mark.django_db
def test_removed_first_row_is_found() -> None:
    events = _record(3)
    AuditEvent.objects.filter(pk=events[0].pk).delete()
    report = audit_chain_verify()
    assert report.bad_event_id == events[1].pk and report.reason.startswith("link broken")


@pytest.mark.django_db
def test_rehashed_row_breaks_the_next_link() -> None:
    """An attacker who edits a row and fixes its own hash still breaks the link to the next row."""
    from audit.services import event_content, event_hash

    events = _record(4)
    victim = AuditEvent.objects.get(pk=events[1].pk)
    victim.details = {"i": "forged"}
    victim.hash = event_hash(victim.prev_hash, event_content(victim))
    AuditEvent.objects.filter(pk=victim.pk).update(details=victim.details, hash=victim.hash)
    report = audit_chain_verify()
    assert report.bad_event_id == events[2].pk and report.reason.startswith("link broken")


@pytest.mark.django_db
def test_truncated_tail_is_found() -> None:
    events = _record(4)
    AuditEvent.objects.filter(pk__in=[events[2].pk, events[3].pk]).delete()
    report = audit_chain_verify()
    assert not report.ok and report.bad_event_id == events[3].pk and "missing at the tail" in report.reason


@pytest.mark.django_db
def test_row_inserted_outside_the_service_is_found() -> None:
    events = _record(2)
    forged = AuditEvent.objects.create(
        created=events[-1].created, event_type=EventType.LOGIN_SUCCESS, prev_hash=events[-1].hash, hash="f" * 64
    )
    report = audit_chain_verify()
    assert not report.ok and report.bad_event_id == forged.pk


@pytest.mark.django_db
def test_every_row_gone_is_found() -> None:
    _record(2)
    AuditEvent.objects.all().delete()
    assert not audit_chain_verify().ok


@pytest.mark.django_db
def test_rolled_back_write_leaves_the_chain_intact() -> None:
    _record(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        _record(1)
        raise RuntimeError("the change the row describes failed")
    _record(1)
    report = audit_chain_verify()
    assert report.ok and report.rows_checked == 3


def test_redaction_of_secret_keys_and_values() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    redacted = redact(
        {
            "user": "bob@acme.example",
            "password": "hunter2",
            "client_secret": "abc",
            "nested": {"Authorization": "Bearer x", "note": jwt, "list": ["ok", "00" + "a" * 40]},
            "apiKey": "k",
            "code": "c",
            "limit": 20,
        }
    )
    assert redacted == {
        "user": "bob@acme.example",
        "password": REDACTED,
        "client_secret": REDACTED,
        "nested": {"Authorization": REDACTED, "note": REDACTED, "list": ["ok", REDACTED]},
        "apiKey": REDACTED,
        "code": REDACTED,
        "limit": 20,
    }


@pytest.mark.django_db(transaction=True)
def test_tool_arguments_are_stored_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """Through the /mcp path's writer (audit.writer), which commits on its own thread."""
    import asyncio

    from django.utils import timezone

    from consent.tokens import Principal
    from tools.services import tool_call_decided

    principal = Principal(
        user_id=1,
        okta_sub="00u1",
        login="alice@acme.example",
        client_id="c",
        client_name="C",
        scopes=frozenset({"mcp.read"}),
        token_expires=timezone.now(),
        consent_id=1,
        consent_expires=timezone.now(),
        groups=(),
        group_ids=(),
    )
    secret = "s3cr3t-" + "x" * 40
    with caplog.at_level(logging.INFO, logger="okta_mcp.audit"):
        event = asyncio.run(
            tool_call_decided(
                principal=principal,
                tool="get_user",
                arguments={"user": "bob@acme.example", "password": "pw", "query": secret},
                meta=RequestMeta(),
            )
        )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.details == {"arguments": {"user": "bob@acme.example", "password": REDACTED, "query": REDACTED}}
    assert "pw" not in json.dumps(stored.details) and secret not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_json_log_line_after_commit_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="okta_mcp.audit"):
        with pytest.raises(RuntimeError), transaction.atomic():
            audit_record(event_type=EventType.MAINTENANCE, target="rolled-back", meta=RequestMeta())
            raise RuntimeError
        event = audit_record(event_type=EventType.MAINTENANCE, target="kept", meta=RequestMeta(request_id="r1"))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "okta_mcp.audit"]
    assert len(lines) == 1
    assert lines[0]["audit"]["id"] == event.pk and lines[0]["audit"]["target"] == "kept"
    assert lines[0]["audit"]["request_id"] == "r1" and lines[0]["hash"] == event.hash


@pytest.mark.django_db(transaction=True)
def test_the_json_lines_alone_verify_the_chain(caplog: pytest.LogCaptureFixture) -> None:
    """What a SIEM receives is enough to check the rows it was sent: each line holds the bytes its
    hash covers (canonical JSON) with its predecessor's hash."""
    with caplog.at_level(logging.INFO, logger="okta_mcp.audit"):
        events = _record(3)
    raw = [r.getMessage() for r in caplog.records if r.name == "okta_mcp.audit"]
    assert len(raw) == 3
    prev = events[0].prev_hash
    for line, event in zip(raw, events, strict=True):
        parsed = json.loads(line)
        canonical = json.dumps(parsed["audit"], sort_keys=True, separators=(",", ":"), default=str)
        assert f'"audit":{canonical},' in line  # the very bytes, not a re-encoding
        assert parsed["prev_hash"] == prev
        assert hashlib.sha256(prev.encode() + canonical.encode()).hexdigest() == parsed["hash"] == event.hash
        prev = parsed["hash"]
    assert AuditChainHead.objects.get(pk=1).last_hash == prev


def test_batched_lines_are_written_together_and_other_records_at_once() -> None:
    from okta_mcp.observability import BatchedStreamHandler

    writes: list[str] = []

    class Stream:
        def write(self, text: str) -> None:
            writes.append(text)

        def flush(self) -> None:
            pass

    handler = BatchedStreamHandler(Stream())
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("tests.batched")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(handler)
    try:
        log.info("a", extra={"batched": True})
        log.info("b", extra={"batched": True})
        assert writes == []
        handler.flush()
        assert writes == ["a\nb\n"]
        log.info("c", extra={"batched": True})
        log.warning("not batched")  # written at once, after what was held
        assert writes == ["a\nb\n", "c\nnot batched\n"]
    finally:
        log.removeHandler(handler)


def test_a_failing_log_stream_never_fails_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    from okta_mcp.observability import BatchedStreamHandler

    class Broken:
        def write(self, text: str) -> None:
            raise OSError("disk full")

        def flush(self) -> None:
            pass

    handler = BatchedStreamHandler(Broken())
    handler.emit(logging.makeLogRecord({"msg": "x", "batched": True}))
    handler.flush()  # reported on stderr by logging, not raised
    assert "could not be written" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_linear_chain() -> None:
    """Threads with their own database connections write at once; the head lock (PostgreSQL) or
    the database write lock (SQLite, IMMEDIATE transactions) keeps the chain linear."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                audit_record(event_type=EventType.MAINTENANCE, target=f"w{n}-{i}", meta=RequestMeta())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = audit_chain_verify()
    assert report.ok and report.rows_checked == 80
    assert AuditEvent.objects.values("prev_hash").distinct().count() == 80


@pytest.mark.django_db
def test_seeded_chain_verifies() -> None:
    """The bulk builder used by the export tests produces a chain the verifier accepts."""
    _record(2)
    seed_chain(50)
    _record(1)
    assert audit_chain_verify().rows_checked == 53
