"""Skill expressions: which agents a routing target may use.

Operators write targets as text such as ``billing>=5 & (spanish | catalan>=7) & !trainee``; the
text is parsed once at load time into an immutable tree, so a bad expression is rejected with the
position of the mistake, and the tree is hashable: targets with equal expressions share one
agent index in the engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_TOKEN = re.compile(
    r"\s*(?:(?P<op>>=|&&|\|\||[&|!()])|(?P<num>\d+)|(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*))"
)
_WORD_OPS = {"and": "&", "or": "|", "not": "!"}


class SkillExprError(ValueError):
    """A skill expression that cannot be parsed or names an unknown skill."""


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    min_level: int | None = None

    def matches(self, skills: Mapping[str, int], default_min: int) -> bool:
        level = skills.get(self.name)
        return level is not None and level >= (self.min_level or default_min)

    def score(self, skills: Mapping[str, int]) -> int:
        return skills.get(self.name, 0)

    def names(self) -> frozenset[str]:
        return frozenset((self.name,))

    def __str__(self) -> str:
        return self.name if self.min_level is None else f"{self.name}>={self.min_level}"


@dataclass(frozen=True, slots=True)
class Not:
    part: SkillExpr

    def matches(self, skills: Mapping[str, int], default_min: int) -> bool:
        return not self.part.matches(skills, default_min)

    def score(self, skills: Mapping[str, int]) -> int:
        return 0

    def names(self) -> frozenset[str]:
        return self.part.names()

    def __str__(self) -> str:
        return f"!{_wrap(self.part)}"


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[SkillExpr, ...]

    def matches(self, skills: Mapping[str, int], default_min: int) -> bool:
        return all(p.matches(skills, default_min) for p in self.parts)

    def score(self, skills: Mapping[str, int]) -> int:
        """The weakest required skill: an agent is only as good as their weakest needed skill."""
        scores = [p.score(skills) for p in self.parts if not isinstance(p, Not)]
        return min(scores) if scores else 0

    def names(self) -> frozenset[str]:
        return frozenset().union(*(p.names() for p in self.parts))

    def __str__(self) -> str:
        return " & ".join(_wrap(p) for p in self.parts)


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[SkillExpr, ...]

    def matches(self, skills: Mapping[str, int], default_min: int) -> bool:
        return any(p.matches(skills, default_min) for p in self.parts)

    def score(self, skills: Mapping[str, int]) -> int:
        return max(p.score(skills) for p in self.parts)

    def names(self) -> frozenset[str]:
        return frozenset().union(*(p.names() for p in self.parts))

    def __str__(self) -> str:
        return " | ".join(_wrap(p) for p in self.parts)


SkillExpr = Skill | Not | And | Or


def _wrap(expr: SkillExpr) -> str:
    return f"({expr})" if isinstance(expr, And | Or) else str(expr)


def all_of(*exprs: SkillExpr) -> SkillExpr:
    """Conjunction, flattened, so equal requirements give equal (shared) index keys."""
    parts: list[SkillExpr] = []
    for expr in exprs:
        for part in expr.parts if isinstance(expr, And) else (expr,):
            if part not in parts:
                parts.append(part)
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def parse_skill_expr(text: str, known_skills: frozenset[str] | None = None) -> SkillExpr:
    """Parse ``text``; with ``known_skills``, also reject skills nobody defined."""
    tokens = _tokenize(text)
    parser = _Parser(text, tokens)
    expr = parser.parse_or()
    if parser.pos != len(tokens):
        raise SkillExprError(
            f"unexpected {tokens[parser.pos][1]!r} at column {tokens[parser.pos][2] + 1} "
            f"in skill expression {text!r}"
        )
    if known_skills is not None:
        unknown = sorted(expr.names() - known_skills)
        if unknown:
            raise SkillExprError(
                f"unknown skill(s) {', '.join(unknown)} in skill expression {text!r}"
            )
    return expr


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise SkillExprError(
                f"unexpected character at column {column} in skill expression {text!r}"
            )
        kind = match.lastgroup or ""
        value = match.group(kind)
        start = match.start(kind)
        if kind == "word" and value.lower() in _WORD_OPS:
            kind, value = "op", _WORD_OPS[value.lower()]
        elif kind == "op" and value in ("&&", "||"):
            value = value[0]
        tokens.append((kind, value, start))
        pos = match.end()
    if not tokens:
        raise SkillExprError("empty skill expression")
    return tokens


class _Parser:
    """Recursive descent: ``or := and ('|' and)*``, ``and := not ('&' not)*``,
    ``not := '!' not | atom``, ``atom := '(' or ')' | skill ['>=' level]``."""

    def __init__(self, text: str, tokens: list[tuple[str, str, int]]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _accept(self, value: str) -> bool:
        token = self._peek()
        if token is not None and token[0] == "op" and token[1] == value:
            self.pos += 1
            return True
        return False

    def _fail(self, expected: str) -> SkillExprError:
        token = self._peek()
        where = "at end" if token is None else f"at column {token[2] + 1} ({token[1]!r})"
        return SkillExprError(f"expected {expected} {where} in skill expression {self.text!r}")

    def parse_or(self) -> SkillExpr:
        parts = [self.parse_and()]
        while self._accept("|"):
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self) -> SkillExpr:
        parts = [self.parse_not()]
        while self._accept("&"):
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else all_of(*parts)

    def parse_not(self) -> SkillExpr:
        if self._accept("!"):
            return Not(self.parse_not())
        return self.parse_atom()

    def parse_atom(self) -> SkillExpr:
        if self._accept("("):
            expr = self.parse_or()
            if not self._accept(")"):
                raise self._fail("')'")
            return expr
        token = self._peek()
        if token is None or token[0] != "word":
            raise self._fail("a skill name")
        self.pos += 1
        if not self._accept(">="):
            return Skill(token[1])
        level = self._peek()
        if level is None or level[0] != "num":
            raise self._fail("a proficiency level")
        self.pos += 1
        value = int(level[1])
        if not 1 <= value <= 10:
            raise SkillExprError(
                f"proficiency {value} out of range 1-10 in skill expression {self.text!r}"
            )
        return Skill(token[1], value)
