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


class ToolNeedsInput(Exception):
    """The tool cannot finish without the client's user: `result` (an MCP InputRequiredResult) goes
    back in place of the tool's result, and the client retries the call with the answer."""

    def __init__(self, result: Any) -> None:
        super().__init__("input required")
        self.result = result


@dataclass
class ToolContext:
    principal: Principal
    okta: OktaCallInfo = field(default_factory=OktaCallInfo)
    mcp: Any = None
    outcome: str = "success"
    """The audit outcome of a call that returned normally: a destructive tool that only asked for
    confirmation sets `confirmation_required` (or `declined`), so the trail tells asking from acting."""
    note: str = ""
    """A line for the audit row (e.g. how a destructive call was confirmed)."""
