"""Read Okta's recorded HTTP responses (vcrpy cassettes) and collect the objects they returned.

The cassettes live in `<reference dir>/recordings/<family>/*.yaml`; each interaction holds the
request URI and the response body as a JSON string. We keep the JSON objects returned by
successful GET / create calls, grouped by resource family and de-duplicated by id.
"""

from __future__ import annotations

import copy
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every org URL found in the recordings (test.okta.com, dev-123-admin.okta.com, ...) is rewritten
# to this placeholder; the routes swap it for the URL the client used to reach the stand-in.
ORIGIN_PLACEHOLDER = "https://org.sandbox.invalid"
_ORG_URL = re.compile(
    r"https://(?!(?:help|developer|www|support|login|status|trust|oinmanager)\.)"  # Okta's own sites
    r"[A-Za-z0-9-]+\.(?:okta|oktapreview|okta-emea)\.com"
)

# family -> path of the list or item endpoint whose responses hold that family's objects
FAMILY_PATHS: dict[str, re.Pattern[str]] = {
    family: re.compile(pattern)
    for family, pattern in {
        "users": r"/api/v1/users(/[^/]+)?",
        "groups": r"/api/v1/groups(/(?!rules)[^/]+)?",
        "group_rules": r"/api/v1/groups/rules(/[^/]+)?",
        "group_roles": r"/api/v1/groups/[^/]+/roles",
        "user_roles": r"/api/v1/users/[^/]+/roles",
        "user_factors": r"/api/v1/users/[^/]+/factors(/[^/]+)?",
        "apps": r"/api/v1/apps(/[^/]+)?",
        "app_users": r"/api/v1/apps/[^/]+/users(/[^/]+)?",
        "app_groups": r"/api/v1/apps/[^/]+/groups(/[^/]+)?",
        "policies": r"/api/v1/policies(/(?!simulate)[^/]+)?",
        "policy_rules": r"/api/v1/policies/[^/]+/rules(/[^/]+)?",
        "zones": r"/api/v1/zones(/[^/]+)?",
        "authenticators": r"/api/v1/authenticators(/[^/]+)?",
        "devices": r"/api/v1/devices(/[^/]+)?",
        "device_assurances": r"/api/v1/device-assurances(/[^/]+)?",
        "idps": r"/api/v1/idps(/(?!credentials)[^/]+)?",
        "authorization_servers": r"/api/v1/authorizationServers(/[^/]+)?",
        "trusted_origins": r"/api/v1/trustedOrigins(/[^/]+)?",
        "log_events": r"/api/v1/logs",
    }.items()
}


def default_reference_dir() -> Path:
    configured = os.environ.get("OKTA_REFERENCE_DIR")
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "okta-reference"


def _path_of(uri: str) -> str:
    return re.sub(r"^https?://[^/]+", "", uri).split("?", 1)[0]


def _family_of(path: str) -> str | None:
    for family, pattern in FAMILY_PATHS.items():
        if pattern.fullmatch(path):
            return family
    return None


def _body_objects(body: Any) -> list[dict[str, Any]]:
    text = body.get("string") if isinstance(body, dict) else body
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text:
        return []
    try:
        data = json.loads(_ORG_URL.sub(ORIGIN_PLACEHOLDER, text))
    except ValueError:
        return []
    items = data if isinstance(data, list) else [data]
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]


@lru_cache(maxsize=4)
def _load(recordings_dir: str) -> dict[str, dict[str, dict[str, Any]]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[str, dict[str, dict[str, Any]]] = {family: {} for family in FAMILY_PATHS}
    for cassette in sorted(Path(recordings_dir).glob("*/*.yaml")):
        with cassette.open(encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=loader) or {}
        for interaction in document.get("interactions") or []:
            request, response = interaction.get("request", {}), interaction.get("response", {})
            method = request.get("method")
            status = (response.get("status") or {}).get("code", 0)
            if method not in ("GET", "POST") or not 200 <= status < 300:
                continue
            family = _family_of(_path_of(request.get("uri", "")))
            if family is None:
                continue
            for item in _body_objects(response.get("body")):
                # first response wins: later ones are usually after a test mutated the object
                found[family].setdefault(item["id"], item)
    return found


def recorded_objects(reference_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Family -> recorded objects (deep copies, in cassette order, unique ids)."""
    recordings_dir = reference_dir / "recordings"
    if not recordings_dir.is_dir():
        raise FileNotFoundError(
            f"Okta recordings not found at {recordings_dir}; set OKTA_REFERENCE_DIR to the okta-reference folder"
        )
    loaded = _load(str(recordings_dir.resolve()))
    return {family: copy.deepcopy(list(items.values())) for family, items in loaded.items()}
