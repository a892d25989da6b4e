"""A small, safe parser and evaluator for Okta's SCIM-like `filter` / `search` expressions.

Supported: `attr op "value"` comparisons (`eq ne sw co ew gt ge lt le`), `attr pr`, joined
by `and` / `or` (and binds tighter), with parentheses. Each endpoint passes a `Grammar` that says
which attributes and operators it accepts; anything else raises `ExpressionError`, which the
routes turn into Okta's 400 error. Nothing is ever evaluated as code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Union

MAX_LENGTH = 2048
MAX_COMPARISONS = 32
MAX_DEPTH = 8

ALL_OPERATORS = frozenset({"eq", "ne", "sw", "co", "ew", "gt", "ge", "lt", "le", "pr"})

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_.]))
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


class ExpressionError(ValueError):
    """The expression is malformed or uses an attribute/operator the endpoint does not support."""


@dataclass(frozen=True)
class Grammar:
    attributes: frozenset[str]
    operators: frozenset[str] = frozenset({"eq"})
    attribute_prefixes: tuple[str, ...] = ()

    def allows(self, attribute: str) -> bool:
        if attribute in self.attributes:
            return True
        return any(
            attribute.startswith(prefix) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", attribute[len(prefix):])
            for prefix in self.attribute_prefixes
        )


Value = Union[str, int, float, bool, None]


@dataclass(frozen=True)
class Comparison:
    attribute: str
    operator: str
    value: Value = None


@dataclass(frozen=True)
class Logical:
    operator: str  # "and" | "or"
    left: "Expression"
    right: "Expression"


Expression = Union[Comparison, Logical]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"Unexpected character at position {position}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], grammar: Grammar) -> None:
        self.tokens = tokens
        self.index = 0
        self.grammar = grammar
        self.comparisons = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ExpressionError("Unexpected end of expression")
        self.index += 1
        return token

    def peek_keyword(self, keyword: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() == keyword

    def parse_or(self, depth: int) -> Expression:
        node = self.parse_and(depth)
        while self.peek_keyword("or"):
            self.take()
            node = Logical("or", node, self.parse_and(depth))
        return node

    def parse_and(self, depth: int) -> Expression:
        node = self.parse_factor(depth)
        while self.peek_keyword("and"):
            self.take()
            node = Logical("and", node, self.parse_factor(depth))
        return node

    def parse_factor(self, depth: int) -> Expression:
        token = self.peek()
        if token is not None and token[0] == "lparen":
            if depth >= MAX_DEPTH:
                raise ExpressionError("Expression is nested too deeply")
            self.take()
            node = self.parse_or(depth + 1)
            if self.take()[0] != "rparen":
                raise ExpressionError("Missing closing parenthesis")
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Comparison:
        kind, attribute = self.take()
        if kind != "word" or attribute.lower() in ("and", "or", "not"):
            raise ExpressionError(f"Expected an attribute name, got {attribute!r}")
        if not self.grammar.allows(attribute):
            raise ExpressionError(f"Unsupported attribute {attribute!r}")
        kind, operator = self.take()
        operator = operator.lower()
        if kind != "word" or operator not in ALL_OPERATORS:
            raise ExpressionError(f"Unknown operator {operator!r}")
        if operator not in self.grammar.operators:
            raise ExpressionError(f"Operator {operator!r} is not supported here")
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise ExpressionError("Too many comparisons")
        if operator == "pr":
            return Comparison(attribute, operator)
        return Comparison(attribute, operator, self.parse_value())

    def parse_value(self) -> Value:
        kind, text = self.take()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise ExpressionError(f"Expected a value, got {text!r}")


def parse(text: str, grammar: Grammar) -> Expression:
    if len(text) > MAX_LENGTH:
        raise ExpressionError("Expression is too long")
    tokens = _tokenize(text)
    if not tokens:
        raise ExpressionError("Empty expression")
    parser = _Parser(tokens, grammar)
    node = parser.parse_or(0)
    if parser.peek() is not None:
        raise ExpressionError(f"Unexpected token {parser.peek()[1]!r}")  # type: ignore[index]
    return node


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _order(left: Any, right: Any) -> int | None:
    """-1/0/1 comparing an attribute value with a literal; None when they are not comparable."""
    left_date, right_date = _as_datetime(left), _as_datetime(right)
    if left_date is not None and right_date is not None:
        if left_date.tzinfo is None or right_date.tzinfo is None:
            left_date, right_date = left_date.replace(tzinfo=None), right_date.replace(tzinfo=None)
        return (left_date > right_date) - (left_date < right_date)
    if isinstance(left, (int, float)) and isinstance(right, (int, float)) and not isinstance(left, bool):
        return (left > right) - (left < right)
    if isinstance(left, str) and isinstance(right, str):
        a, b = left.lower(), right.lower()
        return (a > b) - (a < b)
    return None


def _matches(value: Any, operator: str, literal: Value) -> bool:
    if operator == "pr":
        return value not in (None, "", [], {})
    if operator in ("eq", "ne"):
        if isinstance(value, str) and isinstance(literal, str):
            equal = value.lower() == literal.lower()
        else:
            equal = value == literal
        return equal if operator == "eq" else not equal
    if operator in ("sw", "co", "ew"):
        if not isinstance(value, str) or not isinstance(literal, str):
            return False
        a, b = value.lower(), literal.lower()
        return {"sw": a.startswith, "co": a.__contains__, "ew": a.endswith}[operator](b)
    order = _order(value, literal)
    if order is None:
        return False
    return {"gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0}[operator]


Resolver = Callable[[str], list[Any]]


def evaluate(node: Expression, resolve: Resolver) -> bool:
    """`resolve(attribute)` returns the candidate values (several for array attributes)."""
    if isinstance(node, Logical):
        if node.operator == "and":
            return evaluate(node.left, resolve) and evaluate(node.right, resolve)
        return evaluate(node.left, resolve) or evaluate(node.right, resolve)
    values = resolve(node.attribute)
    if node.operator == "ne":
        return all(_matches(value, "ne", node.value) for value in values) if values else True
    return any(_matches(value, node.operator, node.value) for value in values)


def attributes_of(node: Expression) -> set[str]:
    if isinstance(node, Logical):
        return attributes_of(node.left) | attributes_of(node.right)
    return {node.attribute}


def dotted(document: dict[str, Any], attribute: str) -> list[Any]:
    """Resolve `a.b.c` in a JSON document; lists along the way fan out (e.g. `target.id`)."""
    current: list[Any] = [document]
    for part in attribute.split("."):
        found: list[Any] = []
        for item in current:
            if isinstance(item, list):
                found.extend(sub.get(part) for sub in item if isinstance(sub, dict))
            elif isinstance(item, dict):
                found.append(item.get(part))
        current = found
    flattened: list[Any] = []
    for item in current:
        flattened.extend(item if isinstance(item, list) else [item])
    return flattened
