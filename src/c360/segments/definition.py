"""Segment definitions: a small boolean language over profile fields, parsed and compiled to SQL.

A definition is what marketing writes, e.g.::

    churn_risk > 0.7 and total_lifetime_spend > 500 and email_subscription_status = 'subscribed'

**The language** (keywords in any case)::

    expr      := or
    or        := and ("or" and)*
    and       := not ("and" not)*
    not       := "not" not | predicate
    predicate := "(" expr ")"
               | FIELD                                   -- a bool field on its own
               | FIELD op value                          -- op: = == != <> < <= > >=
               | FIELD ["not"] "in" "(" value ("," value)* ")"
               | FIELD ["not"] "between" value "and" value
               | FIELD "is" ["not"] "null"
    value     := NUMBER | 'text' | "text" | true | false

Nothing else exists: no function calls, attribute access, subscripts, arithmetic, field-to-field
comparisons or SQL. A field is a name the caller's *field list* holds — built from the profile
schema in use (the catalogue's published columns and the real-time features), so a feature
added to the catalogue (``churn_risk`` from the churn model) can be used without code here.
Each value is checked against its field's kind: numbers for numeric fields, text for text,
``true``/``false`` for bool, an ISO date (``'2026-01-31'``) for dates and an ISO date-time for
times (UTC).

**Errors point at the token**: :class:`DefinitionError` carries the 0-based ``position`` and the
offending ``token``; an unknown field names the nearest field (difflib). Limits keep a hostile
definition cheap to refuse: :data:`MAX_LENGTH` characters, :data:`MAX_TOKENS` tokens,
:data:`MAX_DEPTH` levels of nesting, :data:`MAX_IN_VALUES` values in one ``in``.

**Compiled, never pasted** (:func:`compile_sql`): field names come only from the field list
(checked against a strict identifier pattern as well) and are double-quoted; every value is a
bound parameter. NULL follows SQL: a person whose field is null matches no comparison on it,
negated or not (``not x > 5`` is not true for a null ``x``); ``is null`` asks for it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from c360.errors import TerminalError

MAX_LENGTH = 4_000
MAX_TOKENS = 1_000
MAX_DEPTH = 32
MAX_IN_VALUES = 250
MAX_TEXT = 200  # characters of one text value
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")  # a field name safe to quote in every dialect


class Kind(enum.Enum):
    """What a field holds, as far as definitions are concerned."""

    NUMBER = "number"
    TEXT = "text"
    BOOL = "bool"
    DATE = "date"
    TIMESTAMP = "timestamp"


def kind_of(arrow_type: pa.DataType) -> Kind:
    if pa.types.is_boolean(arrow_type):
        return Kind.BOOL
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    ):
        return Kind.NUMBER
    if pa.types.is_timestamp(arrow_type):
        return Kind.TIMESTAMP
    if pa.types.is_date(arrow_type):
        return Kind.DATE
    return Kind.TEXT


def fields_of(schema: pa.Schema, exclude: Sequence[str] = ("person_id",)) -> dict[str, Kind]:
    """The field list of an Arrow schema (e.g. a published batch profile's)."""
    return {f.name: kind_of(f.type) for f in schema if f.name not in exclude}


class DefinitionError(TerminalError):
    """A definition that cannot be used: what is wrong, and where (0-based ``position``)."""

    def __init__(self, problem: str, position: int, token: str, text: str) -> None:
        self.problem = problem
        self.position = position
        self.token = token
        super().__init__(f"definition: {problem} at position {position}")
        self.pointer = _pointer(text, position, max(1, len(token)))

    def as_dict(self) -> dict[str, object]:
        return {"problem": self.problem, "position": self.position, "token": self.token}


def _pointer(text: str, position: int, width: int) -> str:
    """Two lines: the definition (shortened around the position) and a caret under the token."""
    start = max(0, position - 60)
    shown = text[start : position + 60].replace("\n", " ")
    return f"{shown}\n{' ' * (position - start)}{'^' * min(width, 60)}"


# -- the syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    position: int


@dataclass(frozen=True)
class Value:
    value: object  # int | float | str | bool | dt.date | dt.datetime, typed for its field
    position: int


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >=
    value: Value


@dataclass(frozen=True)
class InList:
    field: Field
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True)
class Between:
    field: Field
    low: Value
    high: Value
    negated: bool


@dataclass(frozen=True)
class IsNull:
    field: Field
    negated: bool


@dataclass(frozen=True)
class IsTrue:
    field: Field


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | InList | Between | IsNull | IsTrue | Not | And | Or


@dataclass(frozen=True)
class Definition:
    """A parsed, checked definition: its text, tree and the fields it reads."""

    text: str
    tree: Node
    fields: tuple[str, ...]


# -- tokens ------------------------------------------------------------------------------------

_KEYWORDS = {"and", "or", "not", "in", "between", "is", "null", "true", "false"}
_OPERATORS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<name>[^\W\d]\w*)
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # number string name keyword op punct end
    text: str
    position: int


def _tokens(text: str) -> Iterator[_Token]:
    """Tokens on demand, so that an error is reported where parsing first goes wrong."""
    position = 0
    count = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            char = text[position]
            if char in "'\"":
                raise DefinitionError("unterminated text value", position, char, text)
            raise DefinitionError(f"unexpected character {char!r}", position, char, text)
        kind = match.lastgroup or "space"
        if kind != "space":
            word = match.group()
            if kind == "name" and word.lower() in _KEYWORDS:
                kind = "keyword"
            count += 1
            if count > MAX_TOKENS:
                raise DefinitionError(
                    f"too long: more than {MAX_TOKENS} tokens", position, word, text
                )
            yield _Token(kind, word, position)
        position = match.end()
    yield _Token("end", "", len(text))


# -- the parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, Kind]) -> None:
        self.text = text
        self.fields = fields
        self._stream = _tokens(text)
        self._current = next(self._stream)
        self.depth = 0
        self.used: dict[str, None] = {}

    # token helpers
    @property
    def token(self) -> _Token:
        return self._current

    def _is(self, *words: str) -> bool:
        token = self.token
        return token.kind in ("keyword", "punct", "op") and token.text.lower() in words

    def _take(self) -> _Token:
        token = self._current
        if token.kind != "end":
            self._current = next(self._stream)
        return token

    def _expect(self, word: str, what: str) -> _Token:
        if not self._is(word):
            self._fail(f"expected {what}")
        return self._take()

    def _fail(self, problem: str, token: _Token | None = None) -> DefinitionError:
        token = token or self.token
        shown = f"{problem}, found {_describe(token)}"
        raise DefinitionError(shown, token.position, token.text, self.text)

    # grammar
    def parse(self) -> Node:
        if self.token.kind == "end":
            self._fail("expected a condition")
        tree = self._or()
        if self.token.kind != "end":
            self._fail("expected and, or, or the end")
        return tree

    def _nested(self, parse: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self._fail(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return parse()
        finally:
            self.depth -= 1

    def _or(self) -> Node:
        operands = [self._and()]
        while self._is("or"):
            self._take()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self) -> Node:
        operands = [self._not()]
        while self._is("and"):
            self._take()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _not(self) -> Node:
        if self._is("not"):
            self._take()
            return Not(self._nested(self._not))
        return self._predicate()

    def _predicate(self) -> Node:
        if self._is("("):
            self._take()
            inner = self._nested(self._or)
            self._expect(")", "')'")
            return inner
        field = self._field()
        kind = self.fields[field.name]
        if self._is("is"):
            self._take()
            negated = self._is("not")
            if negated:
                self._take()
            self._expect("null", "null")
            return IsNull(field, negated)
        negated = False
        if self._is("not"):
            self._take()
            negated = True
            if not self._is("in", "between"):
                self._fail("expected in or between after not")
        if self._is("in"):
            self._take()
            self._expect("(", "'(' opening the list of values")
            values = [self._value(kind, field)]
            while self._is(","):
                self._take()
                if len(values) >= MAX_IN_VALUES:
                    self._fail(f"more than {MAX_IN_VALUES} values in one list")
                values.append(self._value(kind, field))
            self._expect(")", "',' or ')'")
            return InList(field, tuple(values), negated)
        if self._is("between"):
            self._take()
            if kind is Kind.BOOL:
                self._fail(f"{field.name} is true or false: between does not apply")
            low = self._value(kind, field)
            self._expect("and", "and (between LOW and HIGH)")
            return Between(field, low, self._value(kind, field), negated)
        if self.token.kind == "op":
            op = {"==": "=", "<>": "!="}.get(self.token.text, self.token.text)
            if kind is Kind.BOOL and op not in ("=", "!="):
                self._fail(f"{field.name} is true or false: compare it with = or !=")
            self._take()
            return Compare(field, op, self._value(kind, field))
        if kind is Kind.BOOL:
            return IsTrue(field)
        self._fail(f"expected a comparison for {field.name} ({kind.value})")
        raise AssertionError  # unreachable: _fail raises

    def _field(self) -> Field:
        token = self.token
        if token.kind != "name":
            self._fail("expected a field")
        name = token.text
        if name not in self.fields or not _NAME.fullmatch(name):
            nearest = difflib.get_close_matches(name.lower(), list(self.fields), n=1, cutoff=0.5)
            hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
            raise DefinitionError(
                f"unknown field {name[:64]!r}{hint}", token.position, token.text, self.text
            )
        self._take()
        if self._is("("):
            self._fail("function calls are not part of a definition")
        self.used[name] = None
        return Field(name, token.position)

    def _value(self, kind: Kind, field: Field) -> Value:
        token = self.token
        if token.kind == "name":
            self._fail("expected a value (fields are compared with values, not other fields)")
        if token.kind == "keyword" and token.text.lower() in ("true", "false"):
            if kind is not Kind.BOOL:
                self._fail(f"{field.name} is a {kind.value}: true/false does not apply")
            self._take()
            return Value(token.text.lower() == "true", token.position)
        if token.kind == "number":
            if kind is not Kind.NUMBER:
                self._fail(f"{field.name} is a {kind.value}: expected {_EXPECTED[kind]}")
            self._take()
            return Value(self._number(token), token.position)
        if token.kind == "string":
            self._take()
            quote = token.text[0]
            raw = token.text[1:-1].replace(quote * 2, quote)
            if len(raw) > MAX_TEXT:
                self._fail(f"a text value longer than {MAX_TEXT} characters", token)
            return Value(self._typed_text(raw, kind, field, token), token.position)
        self._fail(f"expected {_EXPECTED[kind]}")
        raise AssertionError

    def _number(self, token: _Token) -> int | float:
        text = token.text
        if re.fullmatch(r"[-+]?\d+", text):
            value = int(text)
            if abs(value) > 2**63 - 1:
                self._fail("a number out of range", token)
            return value
        number = float(text)
        if not math.isfinite(number):
            self._fail("a number out of range", token)
        return number

    def _typed_text(self, raw: str, kind: Kind, field: Field, token: _Token) -> object:
        if kind is Kind.TEXT:
            return raw
        try:
            if kind is Kind.DATE:
                return dt.date.fromisoformat(raw)
            if kind is Kind.TIMESTAMP:
                moment = dt.datetime.fromisoformat(raw)
                if moment.tzinfo is not None:
                    moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
                return moment
        except ValueError:
            pass
        self._fail(f"{field.name} is a {kind.value}: expected {_EXPECTED[kind]}", token)
        raise AssertionError


_EXPECTED = {
    Kind.NUMBER: "a number",
    Kind.TEXT: "a text value in quotes",
    Kind.BOOL: "true or false",
    Kind.DATE: "an ISO date in quotes ('2026-01-31')",
    Kind.TIMESTAMP: "an ISO date-time in quotes ('2026-01-31T08:00:00Z')",
}


def _describe(token: _Token) -> str:
    """The token as an error names it: a quoted value only by its kind (it may be an email or a
    name, and error bodies and logs carry no personal data), anything else as written."""
    if token.kind == "end":
        return "the end"
    if token.kind == "string":
        return "a quoted text value"
    return repr(token.text[:40])


def parse(text: str, fields: Mapping[str, Kind]) -> Definition:
    """Parse and check a definition against ``fields``; :class:`DefinitionError` if it is not
    one."""
    if not isinstance(text, str):
        raise DefinitionError("a definition is text", 0, "", "")
    if len(text) > MAX_LENGTH:
        raise DefinitionError(
            f"too long: {len(text)} characters, at most {MAX_LENGTH}", MAX_LENGTH, "", text
        )
    parser = _Parser(text, fields)
    tree = parser.parse()
    return Definition(text, tree, tuple(parser.used))


# -- SQL ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    """A definition as an SQL boolean expression: ``sql`` with placeholders, ``params`` in order.

    ``named`` maps placeholder names to values when the placeholder style was named."""

    sql: str
    params: tuple[object, ...]
    names: tuple[str, ...]

    @property
    def named(self) -> dict[str, object]:
        return dict(zip(self.names, self.params, strict=True))


def qmark(_: int) -> str:
    """``?`` placeholders: DuckDB and Spark (through sqlglot)."""
    return "?"


def colon(prefix: str = "seg_") -> Callable[[int], str]:
    """``:seg_0`` placeholders: SQLAlchemy's ``text()`` (SQLite, PostgreSQL)."""
    return lambda index: f":{prefix}{index}"


def compile_sql(
    definition: Definition,
    placeholder: Callable[[int], str] = qmark,
    column: Callable[[str], str] = lambda name: f'"{name}"',
) -> Compiled:
    """The definition as a WHERE condition. ``column`` gives a field's SQL (default: the quoted
    name; a caller may prefix a table alias). Values are only ever placeholders."""
    params: list[object] = []
    names: list[str] = []

    def bind(value: Value) -> str:
        mark = placeholder(len(params))
        params.append(value.value)
        names.append(mark.lstrip(":"))
        return mark

    def col(field: Field) -> str:
        if not _NAME.fullmatch(field.name):  # parse() refused it already; never pasted
            raise DefinitionError("unknown field", field.position, field.name, definition.text)
        return column(field.name)

    def sql(node: Node) -> str:
        match node:
            case Compare(field, op, value):
                return f"{col(field)} {'<>' if op == '!=' else op} {bind(value)}"
            case InList(field, values, negated):
                marks = ", ".join(bind(v) for v in values)
                return f"{col(field)} {'NOT IN' if negated else 'IN'} ({marks})"
            case Between(field, low, high, negated):
                word = "NOT BETWEEN" if negated else "BETWEEN"
                return f"{col(field)} {word} {bind(low)} AND {bind(high)}"
            case IsNull(field, negated):
                return f"{col(field)} IS {'NOT NULL' if negated else 'NULL'}"
            case IsTrue(field):
                return f"{col(field)} = {bind(Value(True, field.position))}"
            case Not(operand):
                return f"NOT ({sql(operand)})"
            case And(operands):
                return " AND ".join(f"({sql(o)})" for o in operands)
            case Or(operands):
                return " OR ".join(f"({sql(o)})" for o in operands)
        raise AssertionError(f"unknown node {node!r}")

    return Compiled(sql(definition.tree), tuple(params), tuple(names))
