"""Reading the conformance suite's results and judging them against conformance/baseline.yml.

A baseline entry is either a whole scenario (`tasks-lifecycle`) or one check of it
(`caching:sep-2549-prompts-list-caching-hints`), each with the reason it does not apply to this
server. The judgement is stricter than the suite's own `--expected-failures`:
- any failing check not covered by the baseline fails the run;
- a baselined scenario or check that now passes fails the run too (the baseline stays reviewed);
- a baseline entry for a scenario that did not run fails the run (no silent leftovers);
- every entry must give a reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

BASELINE = Path(__file__).resolve().parents[2] / "conformance" / "baseline.yml"
_SEVERITY = {"FAILURE": 4, "WARNING": 3, "SKIPPED": 2, "INFO": 1, "SUCCESS": 0}
_RESULT_DIR = re.compile(r"^(?:authorization-server|server)-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")


@dataclass(frozen=True)
class Check:
    scenario: str
    id: str
    status: str
    message: str


def load_checks(output_dir: Path) -> dict[str, list[Check]]:
    """The checks of every scenario that left a checks.json under `output_dir`."""
    found: dict[str, list[Check]] = {}
    for checks_file in sorted(output_dir.glob("*/checks.json")):
        match = _RESULT_DIR.match(checks_file.parent.name)
        if not match:
            continue
        scenario = match["scenario"]
        found[scenario] = [
            Check(scenario, c["id"], c["status"], c.get("errorMessage") or "")
            for c in json.loads(checks_file.read_text())
        ]
    return found


def scenarios_started(stdout: str) -> list[str]:
    return re.findall(r"^=== Running scenario: (\S+) ===$", stdout, flags=re.MULTILINE)


def load_baseline(section: str, path: Path = BASELINE) -> dict[str, str]:
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get(section) or {}
    if not isinstance(entries, dict):
        raise TypeError(f"{path}: section {section!r} must map each entry to its reason")
    return {str(k): str(v or "") for k, v in entries.items()}


def _verdicts(checks: list[Check]) -> dict[str, Check]:
    """Ids repeat (one per probe); the most severe occurrence decides, as in the suite."""
    out: dict[str, Check] = {}
    for check in checks:
        if check.id not in out or _SEVERITY.get(check.status, 4) > _SEVERITY.get(out[check.id].status, 4):
            out[check.id] = check
    return out


def judge(ran: dict[str, list[Check]], baseline: dict[str, str], expected: list[str] | None = None) -> list[str]:
    """Every problem with the run, one line each; an empty list means the run passes."""
    problems: list[str] = []
    whole = {e for e in baseline if ":" not in e}
    per_check: dict[str, set[str]] = {}
    for entry, reason in baseline.items():
        if not reason.strip():
            problems.append(f"baseline entry {entry!r} gives no reason")
        if ":" in entry:
            scenario, check_id = entry.split(":", 1)
            per_check.setdefault(scenario, set()).add(check_id)
    for scenario in sorted(whole & per_check.keys()):
        problems.append(f"baseline lists {scenario!r} both whole and per check")
    for scenario in sorted((whole | per_check.keys()) - ran.keys()):
        problems.append(f"baseline entry for {scenario!r}, which did not run: remove or fix it")
    for scenario in expected or []:
        if scenario not in ran:
            problems.append(f"{scenario}: started but left no results (crash or timeout)")

    for scenario, checks in sorted(ran.items()):
        verdicts = _verdicts(checks)
        failing = {cid: c for cid, c in verdicts.items() if c.status == "FAILURE"}
        if scenario in whole:
            if not failing:
                problems.append(f"{scenario}: baselined as not applicable but now passes: remove it from the baseline")
            continue
        for check_id, check in sorted(failing.items()):
            if check_id not in per_check.get(scenario, set()):
                problems.append(f"{scenario}:{check_id} FAILED: {check.message[:300]}")
        for check_id in sorted(per_check.get(scenario, set())):
            check = verdicts.get(check_id)
            if check is not None and check.status in ("SUCCESS", "INFO", "WARNING"):
                problems.append(f"{scenario}:{check_id}: baselined but now {check.status}: remove it from the baseline")
    return problems
