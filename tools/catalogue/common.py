"""What every tool shares: identifier and expression checks (before any HTTP call), the opaque
paging cursor, the page/get helpers around `tools.okta.okta_read`, and the building blocks of
compact results.

Results are read from the JSON Okta sent: compact fields for a person, and with `full=true` the
whole Okta object as Okta has it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from django.core import signing
from pydantic import BaseModel, Field

from tools.context import ToolContext, ToolFailure
from tools.okta import OktaError, okta_read

# --- identifiers ---------------------------------------------------------------------------------
# Okta object ids are letters and digits only (00u..., 00g..., 0oa..., the auth server "default").
# Logins are emails or simple names. Nothing that could change the API path (/, .., %2f, ?, #,
# whitespace, backslash) passes either pattern, so it never reaches a URL.
OKTA_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
OKTA_ID_OR_LOGIN = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._@+\-]{0,99}$")


def checked_identifier(value: str, what: str, *, login: bool = False) -> str:
    """An Okta id (or, with `login=True`, an id or a login), or a tool error naming the argument."""
    if login:
        if not OKTA_ID_OR_LOGIN.fullmatch(value):
            raise ToolFailure(f"invalid {what}: use an Okta id or login (letters, digits, . _ @ + -)", code="invalid_id")
    elif not OKTA_ID.fullmatch(value):
        raise ToolFailure(f"invalid {what}: an Okta id has letters and digits only (like 00u1a2b3c4d5e6f7g8h9)", code="invalid_id")
    return value


# Okta parses filter and search expressions itself; we only keep them one line and bounded.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
Expression = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1000,
        pattern=NO_CONTROL_CHARACTERS,
        description="An Okta expression, e.g. status eq \"ACTIVE\" (one line, at most 1000 characters)",
    ),
]
Keyword = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_CONTROL_CHARACTERS)]
Cursor = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        pattern=r"^[A-Za-z0-9_\-:.]+$",
        description="next_cursor from the previous page of the same listing; omit for the first page",
    ),
]
UserRef = Annotated[
    str, Field(min_length=1, max_length=100, description="Okta user id (00u...) or login (e.g. jane.doe@example.com)")
]
OktaId = Annotated[str, Field(min_length=1, max_length=64)]


class ListInput(BaseModel):
    model_config = {"extra": "forbid"}
    limit: int = Field(default=20, ge=1, le=200, description="Items per page (1 to 200)")
    cursor: Cursor | None = None
    full: bool = Field(default=False, description="Return each whole Okta object in `full` as well")


class GetInput(BaseModel):
    model_config = {"extra": "forbid"}
    full: bool = Field(default=False, description="Return the whole Okta object in `full` as well")


T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    items: list[T]
    returned: int = Field(description="Number of items in this page")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` (with the same filters) for the next page; null on the last page"
    )


# --- the cursor ----------------------------------------------------------------------------------
# Signed (not encrypted) with the server's secret: a cursor carries Okta's own `after` cursor (or
# an offset), the tool and the query it belongs to. A changed cursor fails the signature check; a
# cursor of another tool or query is refused; both before any HTTP call.
_CURSOR_SALT = "okta-mcp.tools.cursor"
CURSOR_MAX_AGE_SECONDS = 3600


def cursor_encode(*, tool: str, query: dict[str, Any], position: dict[str, Any]) -> str:
    return signing.dumps({"t": tool, "q": query, "p": position}, salt=_CURSOR_SALT, compress=True)


def cursor_decode(cursor: str, *, tool: str, query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(query, position) of a cursor this server issued for this tool. Query arguments given with a
    cursor must match the cursor's own (or be left out)."""
    try:
        state = signing.loads(cursor, salt=_CURSOR_SALT, max_age=CURSOR_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise ToolFailure("invalid cursor: it has expired; list again without a cursor", code="invalid_cursor") from None
    except signing.BadSignature:
        raise ToolFailure(
            "invalid cursor: it was altered or not issued by this server; list again without a cursor",
            code="invalid_cursor",
        ) from None
    if not isinstance(state, dict) or state.get("t") != tool or not isinstance(state.get("p"), dict):
        raise ToolFailure(f"invalid cursor: it belongs to another tool, not {tool}", code="invalid_cursor")
    stored = state.get("q") or {}
    for key, value in query.items():
        if value is not None and stored.get(key) != value:
            raise ToolFailure(
                f"invalid cursor: it belongs to a listing with other arguments ({key} differs); "
                "pass the same arguments or leave them out",
                code="invalid_cursor",
            )
    return stored, state["p"]


# --- Okta errors ---------------------------------------------------------------------------------
def tool_error(exc: OktaError, *, what: str = "", ident: str = "") -> ToolFailure:
    if exc.status == 404 and what:
        return ToolFailure(
            f"no Okta {what} {ident!r}" + (f" [request {exc.request_id}]" if exc.request_id else ""),
            code=exc.code or "not_found",
        )
    return ToolFailure(str(exc), code=exc.code or "okta_error")


# --- paging and getting --------------------------------------------------------------------------
@dataclass(frozen=True)
class RawPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    query: dict[str, Any]
    """The query Okta was asked, including the values fixed on the first page."""


async def okta_page(
    ctx: ToolContext,
    *,
    tool: str,
    path: str,
    ids: Sequence[str] = (),
    query: dict[str, Any] | None = None,
    fixed: dict[str, Any] | None = None,
    cursor: str | None,
    limit: int,
    okta_paged: bool = True,
    not_found: tuple[str, str] | None = None,
) -> RawPage:
    """One page of an Okta listing (`path` with {} for each of `ids`). `query` holds the caller's
    filters under Okta's parameter names (bound into the cursor), `fixed` values computed on the
    first page that later pages must reuse (e.g. a time window). Listings Okta pages
    (`okta_paged`) follow Okta's Link `after` cursor; the few it returns whole are sliced here, so
    every listing honours `limit` and `next_cursor` alike."""
    query = dict(query or {})
    position: dict[str, Any] = {}
    bound_ids = [str(i) for i in ids]
    if cursor:
        stored, position = cursor_decode(cursor, tool=tool, query=query)
        if position.get("ids") != bound_ids:
            raise ToolFailure(
                f"invalid cursor: it belongs to a listing of another object, not {', '.join(bound_ids)}",
                code="invalid_cursor",
            )
        query = {**stored}
    else:
        query = {k: v for k, v in query.items() if v is not None}
        if fixed:
            query.update({k: v for k, v in fixed.items() if v is not None})
    try:
        if okta_paged:
            params = {**query, "limit": limit, "after": position.get("a")}
            answer = await okta_read(path, *ids, query=params, info=ctx.okta)
            items = _as_list(answer.body)
            next_position = {"a": answer.next_after} if answer.next_after and items else None
        else:
            answer = await okta_read(path, *ids, query=query, info=ctx.okta)
            everything = _as_list(answer.body)
            offset = int(position.get("o", 0))
            items = everything[offset : offset + limit]
            next_position = {"o": offset + limit} if offset + limit < len(everything) else None
    except OktaError as exc:
        raise tool_error(exc, what=not_found[0] if not_found else "", ident=not_found[1] if not_found else "") from None
    if next_position:
        next_position["ids"] = bound_ids
    next_cursor = cursor_encode(tool=tool, query=query, position=next_position) if next_position else None
    return RawPage(items=items, next_cursor=next_cursor, query=query)


def _as_list(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    return []


async def okta_object(ctx: ToolContext, path: str, *ids: str, what: str, ident: str) -> dict[str, Any]:
    """One Okta object as Okta sent it; a 404 becomes "no Okta <what> '<ident>'"."""
    try:
        answer = await okta_read(path, *ids, info=ctx.okta)
    except OktaError as exc:
        raise tool_error(exc, what=what, ident=ident) from None
    if not isinstance(answer.body, dict):
        raise ToolFailure(f"Okta returned no {what} for {ident!r}", code="bad_response")
    return answer.body


P = TypeVar("P", bound=Page[Any])


def page_of(model: type[P], raw: RawPage, project: Callable[[dict[str, Any], bool], Any], full: bool) -> P:
    """The page of `raw`'s items, each projected to an item model or to a dict of its fields (cheaper
    for long pages: the whole page is then validated in one pydantic call)."""
    items = [project(item, full) for item in raw.items]
    return model.model_validate({"items": items, "returned": len(items), "next_cursor": raw.next_cursor})


# --- compact results -----------------------------------------------------------------------------
def dig(obj: Any, path: str) -> Any:
    """obj["a"]["b"] for path "a.b", or None when any step is missing."""
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def as_text(value: Any) -> str | None:
    return None if value is None else str(value)


def text(obj: Any, path: str) -> str | None:
    return as_text(dig(obj, path))


def whole(obj: dict[str, Any], full: bool) -> dict[str, Any] | None:
    return obj if full else None


FullField = Field(default=None, description="The whole Okta object, when full=true")
