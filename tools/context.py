from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consent.tokens import Principal
from tools.okta import OktaCallInfo


class ToolFailure(Exception):
    """A failure the model should read (bad identifier, not found, Okta refused): returned as a tool
    error result, never as a stack trace."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ToolContext:
    principal: Principal
    okta: OktaCallInfo = field(default_factory=OktaCallInfo)
    mcp: Any = None
