"""Conditions a routing target may carry, e.g. ``queue_length > 25 and ready("group_b") >= 4``.

Operators write them as text; ``eval`` would let a typo or a hostile tenant admin run code in
the router, so the text is parsed here and checked against a schema of what the engine can
supply, at load time: ``queue_length > "x"`` or a misspelt statistic is rejected with its
column instead of silently never matching in production.

Grammar (keywords case-insensitive; ``or`` binds loosest)::

    or         := and ('or' and)*
    and        := not ('and' not)*
    not        := 'not' not | comparison
    comparison := operand [('=='|'!='|'<'|'<='|'>'|'>=') operand | ['not'] 'in' container]
    container  := '[' literal (',' literal)* ']' | NAME | 'list' '(' STRING ')'
    operand    := literal | NAME | NAME '(' [literal (',' literal)*] ')' | '(' or ')'
    literal    := NUMBER | STRING | 'true' | 'false'

NAME may contain dots (``contact.tier``); STRING takes either quote, a backslash escaping the
next character; NUMBER is decimal (``-2``, ``0.8``, ``1e3``).

Missing values: the engine may not know a value (no pulse from a site yet, no customer record).
Failing the routing decision would be worse, so an unknown value, or one of the wrong type,
makes every comparison and ``in`` test false (``!=`` too) and counts as false where a boolean is
wanted. ``not`` flips that to true: ``not (ewt > 30)`` holds while ``ewt`` is unknown, so write
``ewt <= 30`` when an unknown statistic must not enable a target.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple, Protocol, cast

Value = float | str | bool

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_TOKEN = re.compile(
    rf"""\s*(?:(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<word>{_NAME})
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<cmp>[=!<>]=|<|>)|(?P<op>[()\[\],]))""",
    re.VERBOSE | re.DOTALL | re.ASCII,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


class ConditionError(ValueError):
    """A condition that cannot be parsed or does not fit the schema; ``column`` is 1-based."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


class ValueType(StrEnum):
    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"


_PYTHON_TYPES = {ValueType.NUMBER: (int, float), ValueType.STRING: (str,), ValueType.BOOL: (bool,)}


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """Arguments are literals only, so the engine knows at load time exactly which statistics
    (``ready("group_b")``, not every group) a condition needs."""

    params: tuple[ValueType, ...]
    result: ValueType


@dataclass(frozen=True, slots=True)
class ConditionSchema:
    """What the engine can supply; ``lists`` maps each list name to the type of its entries."""

    variables: Mapping[str, ValueType] = field(default_factory=dict)
    functions: Mapping[str, FunctionSpec] = field(default_factory=dict)
    lists: Mapping[str, ValueType] = field(default_factory=dict)


class ConditionContext(Protocol):
    """Live values at decision time; ``None`` (or a value of the wrong type) means unknown."""

    def variable(self, name: str) -> Value | None: ...
    def call(self, function: str, args: tuple[Value, ...]) -> Value | None: ...
    def in_list(self, list_name: str, value: Value) -> bool: ...


@dataclass(frozen=True, slots=True)
class Literal:
    """The type is kept so that ``true`` and ``1`` (equal in Python) stay unequal nodes."""

    value: Value
    type: ValueType


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    type: ValueType


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Literal, ...]
    type: ValueType


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    type: ClassVar[ValueType] = ValueType.BOOL


@dataclass(frozen=True, slots=True)
class Member:
    value: Expr
    options: tuple[Literal, ...]
    type: ClassVar[ValueType] = ValueType.BOOL


@dataclass(frozen=True, slots=True)
class InList:
    """A list the engine holds (a VIP list), so it can change without reloading targets."""

    value: Expr
    list_name: str
    type: ClassVar[ValueType] = ValueType.BOOL


@dataclass(frozen=True, slots=True)
class Not:
    part: Expr
    type: ClassVar[ValueType] = ValueType.BOOL


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Expr, ...]
    type: ClassVar[ValueType] = ValueType.BOOL


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Expr, ...]
    type: ClassVar[ValueType] = ValueType.BOOL


Expr = Literal | Variable | Call | Compare | Member | InList | Not | And | Or


def _typed(value: object, expected: ValueType) -> Value | None:
    """Engine values arrive untyped: a mistyped one must not compare ``True == 1``-style, and
    NaN (no data) must not make ``!=`` true."""
    ok = isinstance(value, bool) is (expected is ValueType.BOOL) and value == value  # noqa: PLR0124
    return cast(Value, value) if ok and isinstance(value, _PYTHON_TYPES[expected]) else None


_Compiled = Callable[["ConditionContext"], Value | None]


def _compile(expr: Expr) -> _Compiled:
    """A condition as nested closures, built once at load time, so that a decision pays
    neither a tree walk nor pattern matching.  ``None`` is a missing value; see the module
    docstring for how it propagates."""
    match expr:
        case Literal(value=constant):
            return lambda ctx: constant
        case Variable(name, kind):
            return lambda ctx: _typed(ctx.variable(name), kind)
        case Call(function, args, kind):
            values = tuple(a.value for a in args)
            return lambda ctx: _typed(ctx.call(function, values), kind)
        case Compare(op, left, right):
            compare, lhs, rhs = _COMPARE[op], _compile(left), _compile(right)

            def comparison(ctx: ConditionContext) -> Value | None:
                a, b = lhs(ctx), rhs(ctx)
                return a is not None and b is not None and bool(compare(a, b))

            return comparison
        case Member(value=tested, options=options):
            found, choices = _compile(tested), tuple(o.value for o in options)

            def member(ctx: ConditionContext) -> Value | None:
                v = found(ctx)
                return v is not None and any(v == c for c in choices)

            return member
        case InList(value=tested, list_name=list_name):
            listed = _compile(tested)

            def in_list(ctx: ConditionContext) -> Value | None:
                v = listed(ctx)
                return v is not None and bool(ctx.in_list(list_name, v))

            return in_list
        case Not(part):
            inner = _compile(part)
            return lambda ctx: inner(ctx) is not True
        case And(parts):
            every = tuple(map(_compile, parts))
            return lambda ctx: all(p(ctx) is True for p in every)
        case Or(parts):
            some = tuple(map(_compile, parts))
            return lambda ctx: any(p(ctx) is True for p in some)


def _format(expr: Expr, bracket: tuple[type, ...] = ()) -> str:
    """The canonical form: minimal parentheses (``bracket`` lists the node types that need them
    in this position), double quotes, ``25`` rather than ``25.0``."""
    match expr:
        case _ if isinstance(expr, bracket):
            return f"({_format(expr)})"
        case Literal(bool(value)):
            return "true" if value else "false"
        case Literal(str(value)):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        case Literal(value):
            number = float(value)
            return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
        case Variable(name):
            return name
        case Call(function, args):
            return f"{function}({', '.join(map(_format, args))})"
        case Compare(op, left, right):
            return f"{_format(left, _LOGIC)} {op} {_format(right, _LOGIC)}"
        case Member(value, options):
            return f"{_format(value, _LOGIC)} in [{', '.join(map(_format, options))}]"
        case InList(value, name):
            bare = re.fullmatch(_NAME, name, re.ASCII) and name.lower() not in _KEYWORDS
            listed = name if bare else f"list({_format(Literal(name, ValueType.STRING))})"
            return f"{_format(value, _LOGIC)} in {listed}"
        case Not(part):
            return f"not {_format(part, _UNDER_NOT)}"
        case And(parts):
            return " and ".join(_format(p, (Or,)) for p in parts)
        case Or(parts):
            return " or ".join(map(_format, parts))


_LOGIC = (Compare, Member, InList, Not, And, Or)
_UNDER_NOT = (Compare, Member, InList, And, Or)  # "not (ewt > 30)" reads better than "not ewt > 30"


def _nodes(expr: Expr) -> Iterator[Expr]:
    yield expr
    children: tuple[Expr, ...] = ()
    match expr:
        case Compare(_, left, right):
            children = (left, right)
        case Member(part) | InList(part) | Not(part):
            children = (part,)
        case And(children) | Or(children):
            pass
    for child in children:
        yield from _nodes(child)


@dataclass(frozen=True, slots=True)
class Condition:
    """A checked condition, hashable and equal when canonical forms are: targets carrying the
    same condition can share one evaluation per routing decision."""

    expr: Expr
    _compiled: _Compiled = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", _compile(self.expr))

    def __reduce__(self) -> tuple[type[Condition], tuple[Expr]]:
        """Pickled (to a router process) as its expression; compiled again on arrival."""
        return (Condition, (self.expr,))

    def evaluate(self, ctx: ConditionContext) -> bool:
        return self._compiled(ctx) is True

    def variables(self) -> frozenset[str]:
        return frozenset(n.name for n in _nodes(self.expr) if isinstance(n, Variable))

    def functions(self) -> frozenset[Call]:
        """Calls with their arguments: ``ready("a")`` and ``ready("b")`` are two statistics."""
        return frozenset(n for n in _nodes(self.expr) if isinstance(n, Call))

    def lists(self) -> frozenset[str]:
        return frozenset(n.list_name for n in _nodes(self.expr) if isinstance(n, InList))

    def __str__(self) -> str:
        return _format(self.expr)


def parse_condition(text: str, schema: ConditionSchema) -> Condition:
    """Parse and type-check ``text``; raises ``ConditionError`` naming the column at fault."""
    parser = _Parser(text, _tokenize(text), schema)
    expr = parser.parse_or()
    if parser.peek().kind != "end":
        raise parser.error(f"unexpected {parser.peek().value!r}", parser.peek().column)
    if expr.type is not ValueType.BOOL:
        message = f"condition must be true or false, not {expr.type}"
        raise parser.error(message, parser.tokens[0].column)
    return Condition(expr)


class _Token(NamedTuple):
    kind: str  # num, str, word, kw (keyword, lower-cased), cmp, op or end
    value: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while text[pos:].strip():
        match = _TOKEN.match(text, pos)
        if match is None:
            column = len(text) - len(text[pos:].lstrip()) + 1
            char = text[column - 1]
            what = "unterminated string" if char in "\"'" else f"unexpected character {char!r}"
            raise ConditionError(f"condition {text!r}: {what} at column {column}", column)
        kind = match.lastgroup or ""
        value, column = match.group(kind), match.start(kind) + 1
        if kind == "word" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        tokens.append(_Token(kind, value, column))
        pos = match.end()
    if not tokens:
        raise ConditionError("empty condition")
    return [*tokens, _Token("end", "", len(text) + 1)]


class _Parser:
    """Types are checked as each node is built, while token columns are at hand; the tree keeps
    no columns, so conditions differing only in spacing or parentheses compare equal."""

    def __init__(self, text: str, tokens: list[_Token], schema: ConditionSchema) -> None:
        self.text = text
        self.tokens = tokens
        self.schema = schema
        self.pos = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def _accept(self, kind: str, value: str) -> bool:
        found = self.peek()[:2] == (kind, value)
        self.pos += found
        return found

    def _expect(self, value: str) -> None:
        if not self._accept("op", value):
            raise self._fail(repr(value))

    def error(self, message: str, column: int) -> ConditionError:
        return ConditionError(f"condition {self.text!r}: {message} at column {column}", column)

    def _fail(self, expected: str) -> ConditionError:
        token = self.peek()
        found = repr(token.value) if token.kind != "end" else "the end"
        return self.error(f"expected {expected}, found {found}", token.column)

    def _need_bool(self, word: str, column: int, expr: Expr) -> Expr:
        if expr.type is not ValueType.BOOL:
            raise self.error(f"'{word}' needs true or false, not {expr.type}", column)
        return expr

    def parse_or(self) -> Expr:
        return self._connective("or", lambda: self._connective("and", self.parse_not, And), Or)

    def _connective(self, word: str, parse_part: Callable[[], Expr], node: type[And | Or]) -> Expr:
        """``a and (b and c)`` is flattened, to equal its canonical form ``a and b and c``."""
        parts = [(self.peek().column, parse_part())]
        while self._accept("kw", word):
            parts.append((self.peek().column, parse_part()))
        if len(parts) == 1:
            return parts[0][1]
        checked = [self._need_bool(word, column, part) for column, part in parts]
        return node(tuple(q for p in checked for q in (p.parts if isinstance(p, node) else (p,))))

    def parse_not(self) -> Expr:
        if self._accept("kw", "not"):
            return Not(self._need_bool("not", self.peek().column, self.parse_not()))
        return self.parse_comparison()

    def parse_comparison(self) -> Expr:
        left = self.parse_operand()
        op = self.peek()
        if op.kind == "cmp":
            self.pos += 1
            column = self.peek().column
            right = self.parse_operand()
            if left.type is not right.type:
                raise self.error(f"cannot compare {left.type} with {right.type}", column)
            if op.value not in ("==", "!=") and left.type is not ValueType.NUMBER:
                raise self.error(f"{op.value!r} needs numbers, not {left.type}", op.column)
            if self.peek().kind == "cmp" or self.peek().value == "in":
                message = "comparisons cannot be chained, join them with 'and'"
                raise self.error(message, self.peek().column)
            return Compare(op.value, left, right)
        negated = op[:2] == ("kw", "not") and self.peek(1)[:2] == ("kw", "in")
        self.pos += negated
        if not self._accept("kw", "in"):
            return left
        member = self._container(left)
        return Not(member) if negated else member

    def _container(self, value: Expr) -> Expr:
        if self._accept("op", "["):
            options = [self._literal(value.type, "list entries")]
            while self._accept("op", ","):
                options.append(self._literal(value.type, "list entries"))
            self._expect("]")
            return Member(value, tuple(options))
        token = self.peek()
        if token.kind != "word":
            raise self._fail("a list")
        self.pos += 1
        name = token.value
        if name.lower() == "list" and self._accept("op", "("):
            name = str(self._literal(ValueType.STRING, "a list name").value)
            self._expect(")")
        entries = self.schema.lists.get(name)
        if entries is None:
            raise self.error(f"unknown list {name!r}", token.column)
        if entries is not value.type:
            message = f"cannot look up {value.type} in list {name!r} of {entries}"
            raise self.error(message, token.column)
        return InList(value, name)

    def parse_operand(self) -> Expr:
        if self._accept("op", "("):
            expr = self.parse_or()
            self._expect(")")
            return expr
        token = self.peek()
        if token.kind != "word":
            return self._literal()
        self.pos += 1
        if self._accept("op", "("):
            return self._call(token)
        var_type = self.schema.variables.get(token.value)
        if var_type is None:
            raise self.error(f"unknown variable {token.value!r}", token.column)
        return Variable(token.value, var_type)

    def _call(self, name: _Token) -> Call:
        spec = self.schema.functions.get(name.value)
        if spec is None:
            raise self.error(f"unknown function {name.value!r}", name.column)
        args: list[Literal] = []
        while not self._accept("op", ")"):
            if args and not self._accept("op", ","):
                raise self._fail("',' or ')'")
            expected = spec.params[len(args)] if len(args) < len(spec.params) else None
            args.append(self._literal(expected, f"argument {len(args) + 1} of {name.value}()"))
        if len(args) != len(spec.params):
            message = f"{name.value}() takes {len(spec.params)} argument(s), not {len(args)}"
            raise self.error(message, name.column)
        return Call(name.value, tuple(args), spec.result)

    def _literal(self, expected: ValueType | None = None, what: str = "") -> Literal:
        """``expected``: the type ``what`` (a list entry, an argument) must have."""
        token = self.peek()
        if token.kind == "num" and not math.isfinite(float(token.value)):
            raise self.error(f"number {token.value} out of range", token.column)
        if token.kind == "num":
            literal = Literal(float(token.value), ValueType.NUMBER)
        elif token.kind == "str":
            text = re.sub(r"\\(.)", r"\1", token.value[1:-1], flags=re.DOTALL)
            literal = Literal(text, ValueType.STRING)
        elif token.kind == "kw" and token.value in ("true", "false"):
            literal = Literal(token.value == "true", ValueType.BOOL)
        else:
            raise self._fail("a number, string, true or false" if expected else "a value")
        if expected is not None and literal.type is not expected:
            raise self.error(f"{what} must be {expected}, not {literal.type}", token.column)
        self.pos += 1
        return literal
