"""Okta-shaped errors: the exception the handlers raise and the JSON body Okta sends."""

from __future__ import annotations

import secrets
import string
from typing import Any

_ID_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int, alphabet: str = _ID_ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_error_id() -> str:
    # Okta error ids look like "oaeUcGELffqRay0u1OPdnPypw": "oae" + 22 characters.
    return "oae" + random_token(22)


def new_request_id() -> str:
    # Okta request ids look like "X0f5vae0ikvd@6cIht6LagAAAc8".
    return random_token(27, _ID_ALPHABET + "@-_")


def error_body(code: str, summary: str, causes: list[str] | None = None) -> dict[str, Any]:
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": new_error_id(),
        "errorCauses": [{"errorSummary": cause} for cause in (causes or [])],
    }


class OktaError(Exception):
    """An error response in Okta's shape; raised by handlers, rendered by the app."""

    def __init__(
        self,
        status: int,
        code: str,
        summary: str,
        causes: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {summary}")
        self.status = status
        self.code = code
        self.summary = summary
        self.causes = causes or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.summary, self.causes)


def not_found(resource_id: str, kind: str) -> OktaError:
    return OktaError(404, "E0000007", f"Not found: Resource not found: {resource_id} ({kind})")


def validation_failed(what: str, causes: list[str] | None = None) -> OktaError:
    return OktaError(400, "E0000001", f"Api validation failed: {what}", causes)


def invalid_search(cause: str) -> OktaError:
    return OktaError(400, "E0000031", "Invalid search criteria.", [cause])


def invalid_token() -> OktaError:
    return OktaError(401, "E0000011", "Invalid token provided")


def rate_limited() -> OktaError:
    return OktaError(429, "E0000047", "API call exceeded rate limit due to too many requests.")
