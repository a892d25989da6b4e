"""The gate that decides whether a conformance run passes: unexpected failures and stale baseline
entries both fail it, and the committed baseline is well formed."""

from __future__ import annotations

import yaml

from tests.conformance.results import BASELINE, Check, judge


def _ran(**scenarios: list[tuple[str, str]]) -> dict[str, list[Check]]:
    return {
        name.replace("_", "-"): [
            Check(name.replace("_", "-"), cid, status, f"{cid} said {status}") for cid, status in checks
        ]
        for name, checks in scenarios.items()
    }


def test_unexpected_failure_fails_and_baselined_one_does_not() -> None:
    ran = _ran(
        tools_list=[("tools-list", "FAILURE")],
        prompts_list=[("prompts-list", "FAILURE"), ("wire-schema-valid", "SUCCESS")],
    )
    problems = judge(ran, {"prompts-list:prompts-list": "no prompts"})
    assert problems == ["tools-list:tools-list FAILED: tools-list said FAILURE"]


def test_per_check_entry_does_not_excuse_other_checks() -> None:
    ran = _ran(caching=[("hints-prompts", "FAILURE"), ("hints-tools", "FAILURE")])
    assert judge(ran, {"caching:hints-prompts": "no prompts"}) == [
        "caching:hints-tools FAILED: hints-tools said FAILURE"
    ]


def test_repeated_check_id_is_judged_by_its_worst_occurrence() -> None:
    ran = _ran(server_stateless=[("meta-400", "SUCCESS"), ("meta-400", "FAILURE"), ("meta-400", "SUCCESS")])
    assert judge(ran, {}) == ["server-stateless:meta-400 FAILED: meta-400 said FAILURE"]


def test_stale_entries_fail_the_run() -> None:
    ran = _ran(tasks_lifecycle=[("x", "SUCCESS")], prompts_list=[("prompts-list", "SUCCESS")])
    problems = judge(
        ran, {"tasks-lifecycle": "no tasks", "prompts-list:prompts-list": "no prompts", "gone-scenario": "old"}
    )
    assert problems == [
        "baseline entry for 'gone-scenario', which did not run: remove or fix it",
        "prompts-list:prompts-list: baselined but now SUCCESS: remove it from the baseline",
        "tasks-lifecycle: baselined as not applicable but now passes: remove it from the baseline",
    ]


def test_skipped_or_absent_baselined_check_is_tolerated_and_crash_is_not() -> None:
    ran = _ran(caching=[("hints-read", "SKIPPED")])
    assert judge(ran, {"caching:hints-read": "no resources", "caching:hints-templates": "no resources"}) == []
    assert judge(ran, {}, expected=["caching", "ping"]) == ["ping: started but left no results (crash or timeout)"]


def test_entries_need_a_reason_and_one_form() -> None:
    ran = _ran(ping=[("ping", "FAILURE")])
    problems = judge(ran, {"ping": "", "ping:ping": "x"})
    assert "baseline entry 'ping' gives no reason" in problems
    assert "baseline lists 'ping' both whole and per check" in problems


def test_committed_baseline_is_well_formed() -> None:
    data = yaml.safe_load(BASELINE.read_text())
    assert set(data) == {"server-2025-11-25", "server-2026-07-28", "authorization"}
    for section, entries in data.items():
        for entry, reason in (entries or {}).items():
            assert isinstance(reason, str) and len(reason) > 10, f"{section}: {entry} needs a reason"
        # Nothing that every tools server must do may be excused.
        for core in (
            "tools-list",
            "server-initialize",
            "server-stateless",
            "dns-rebinding-protection",
            "http-header-validation",
        ):
            assert core not in (entries or {}), f"{section} baselines {core} whole"
