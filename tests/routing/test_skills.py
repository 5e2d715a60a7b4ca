"""Skill expressions: how operators' target text is parsed, rejected, matched and scored."""

from __future__ import annotations

import re

import pytest

from routing.indices import GroupSpec
from routing.model import AgentStrategy, Channel
from routing.skills import And, Not, Or, Skill, SkillExprError, all_of, parse_skill_expr

KNOWN = frozenset({"billing", "spanish", "catalan", "sales", "trainee"})

a, b, c = Skill("a"), Skill("b"), Skill("c")


def parse(text: str) -> object:
    return parse_skill_expr(text)


# ----------------------------------------------------------------------------- precedence


def test_and_binds_tighter_than_or() -> None:
    assert parse("a | b & c") == Or((a, And((b, c))))
    assert parse("a & b | c") == Or((And((a, b)), c))


def test_parentheses_override_precedence() -> None:
    assert parse("(a | b) & c") == And((Or((a, b)), c))
    assert parse("a & (b | c)") == And((a, Or((b, c))))


def test_not_binds_to_the_nearest_operand_only() -> None:
    assert parse("!a & b") == And((Not(a), b))
    assert parse("!(a & b)") == Not(And((a, b)))
    assert parse("!!a") == Not(Not(a))


def test_not_applies_to_a_skill_with_its_level() -> None:
    assert parse("!billing>=5") == Not(Skill("billing", 5))


def test_word_operators_mean_the_same_as_symbols_in_any_case() -> None:
    assert parse("a and b or not c") == parse("a & b | !c")
    assert parse("a AND b Or NOT c") == parse("a & b | !c")
    assert parse("a && b || c") == parse("a & b | c")


def test_a_word_that_merely_contains_an_operator_is_a_skill_name() -> None:
    assert parse("android | orders & notary") == Or(
        (Skill("android"), And((Skill("orders"), Skill("notary"))))
    )


def test_skill_names_may_contain_digits_dots_and_dashes() -> None:
    assert parse("lang.es-MX & tier_2") == And((Skill("lang.es-MX"), Skill("tier_2")))


def test_level_suffix_sets_the_skills_own_minimum() -> None:
    assert parse("billing>=5") == Skill("billing", 5)
    assert parse("billing >= 5") == Skill("billing", 5)
    assert parse("billing>=1 | sales>=10") == Or((Skill("billing", 1), Skill("sales", 10)))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("billing & $x", "unexpected character at column 11"),
        ("billing > 5", "unexpected character at column 9"),
        ("billing spanish", "unexpected 'spanish' at column 9"),
        ("(a | b)>=5", "unexpected '>=' at column 8"),
        ("a & | b", "expected a skill name at column 5 ('|')"),
        ("a &", "expected a skill name at end"),
        ("(a | b", "expected ')' at end"),
        ("(a | b c", "expected ')' at column 8 ('c')"),
        ("billing>=", "expected a proficiency level at end"),
        ("billing>=x", "expected a proficiency level at column 10 ('x')"),
        ("5g", "expected a skill name at column 1 ('5')"),
        (")", "expected a skill name at column 1 (')')"),
    ],
)
def test_bad_text_is_rejected_with_the_column_of_the_mistake(text: str, message: str) -> None:
    with pytest.raises(SkillExprError, match=re.escape(message)) as caught:
        parse_skill_expr(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_expression_is_rejected(text: str) -> None:
    with pytest.raises(SkillExprError, match="empty skill expression"):
        parse_skill_expr(text)


@pytest.mark.parametrize("level", [0, 11, 99])
def test_level_outside_one_to_ten_is_rejected(level: int) -> None:
    with pytest.raises(SkillExprError, match=f"proficiency {level} out of range 1-10"):
        parse_skill_expr(f"billing>={level}")


@pytest.mark.parametrize("level", [1, 10])
def test_levels_at_the_bounds_are_accepted(level: int) -> None:
    assert parse_skill_expr(f"billing>={level}") == Skill("billing", level)


def test_unknown_skills_are_rejected_all_named_even_under_not() -> None:
    with pytest.raises(SkillExprError, match="unknown skill\\(s\\) french, german"):
        parse_skill_expr("billing & (german | !french)", KNOWN)


def test_unknown_skills_are_accepted_without_a_known_list() -> None:
    assert parse_skill_expr("klingon") == Skill("klingon")


def test_skill_expr_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_skill_expr("")


# ----------------------------------------------------------------------------- matching


def test_a_bare_skill_matches_at_the_targets_default_minimum() -> None:
    billing = parse_skill_expr("billing")
    assert billing.matches({"billing": 5}, 5)
    assert not billing.matches({"billing": 4}, 5)
    assert billing.matches({"billing": 1}, 1)


def test_an_explicit_level_overrides_the_default_minimum_both_ways() -> None:
    assert parse_skill_expr("billing>=3").matches({"billing": 3}, 8)
    assert not parse_skill_expr("billing>=7").matches({"billing": 6}, 1)


def test_a_missing_skill_never_matches() -> None:
    assert not parse_skill_expr("billing").matches({"sales": 10}, 1)


def test_matches_combines_and_or_not() -> None:
    expr = parse_skill_expr("billing>=5 & (spanish | catalan>=7) & !trainee", KNOWN)
    assert expr.matches({"billing": 5, "spanish": 1}, 1)
    assert expr.matches({"billing": 9, "catalan": 7}, 1)
    assert not expr.matches({"billing": 9, "catalan": 6}, 1)
    assert not expr.matches({"billing": 4, "spanish": 9}, 1)
    assert not expr.matches({"billing": 9, "spanish": 9, "trainee": 1}, 1)


def test_not_uses_the_same_minimum_as_the_rest_of_the_target() -> None:
    # "!trainee" with default minimum 5 excludes trainees at level 5 and up only.
    expr = parse_skill_expr("billing & !trainee")
    assert not expr.matches({"billing": 5, "trainee": 5}, 5)
    assert expr.matches({"billing": 5, "trainee": 2}, 5)


def test_score_of_a_skill_is_the_agents_level_or_zero() -> None:
    assert Skill("billing").score({"billing": 7}) == 7
    assert Skill("billing").score({"sales": 7}) == 0


def test_score_of_and_is_the_weakest_required_skill_ignoring_negations() -> None:
    expr = parse_skill_expr("billing & spanish & !trainee")
    assert expr.score({"billing": 9, "spanish": 4, "trainee": 10}) == 4


def test_score_of_or_is_the_strongest_alternative() -> None:
    assert parse_skill_expr("spanish | catalan").score({"spanish": 3, "catalan": 8}) == 8


def test_score_of_not_is_zero() -> None:
    assert parse_skill_expr("!trainee").score({"trainee": 9}) == 0
    assert parse_skill_expr("!trainee & !sales").score({}) == 0


# ----------------------------------------------------------------------------- identity


@pytest.mark.parametrize(
    "variant",
    [
        "billing&spanish",
        "billing  &&  spanish",
        "billing and (spanish)",
        "(billing) AND spanish",
        "billing & spanish & billing",
    ],
)
def test_equal_expressions_from_different_text_are_equal_and_hash_alike(variant: str) -> None:
    reference = parse_skill_expr("billing & spanish")
    other = parse_skill_expr(variant)
    assert other == reference
    assert hash(other) == hash(reference)
    assert {reference: "index"}[other] == "index"


def test_nested_conjunctions_are_flattened_to_one_key() -> None:
    assert parse("(a & b) & c") == parse("a & (b & c)") == And((a, b, c))


def test_all_of_flattens_and_drops_repeated_parts() -> None:
    assert all_of(a) == a
    assert all_of(And((a, b)), b, c) == And((a, b, c))
    assert all_of(a, a) == a


def test_targets_with_equal_expressions_share_one_index_key() -> None:
    def spec(text: str) -> GroupSpec:
        return GroupSpec(
            channel=Channel.VOICE,
            expression=parse_skill_expr(text),
            min_proficiency=3,
            sites=frozenset({"paris"}),
            strategy=AgentStrategy.LONGEST_IDLE,
        )

    index = {spec("billing>=5 & (spanish | catalan)"): 1}
    assert index[spec("billing>=5 and (spanish or catalan)")] == 1
    assert spec("billing>=5 & spanish") not in index


def test_different_levels_are_different_expressions() -> None:
    assert parse("billing>=5") != parse("billing>=6")
    assert parse("billing>=5") != parse("billing")


@pytest.mark.parametrize(
    "text",
    [
        "billing>=5 & (spanish | catalan>=7) & !trainee",
        "a | b & c",
        "!(a | b)",
        "!!a",
        "(a | b) & (c | !a)",
    ],
)
def test_printed_expression_parses_back_to_itself(text: str) -> None:
    expr = parse_skill_expr(text)
    assert parse_skill_expr(str(expr)) == expr


def test_names_lists_every_skill_mentioned() -> None:
    expr = parse_skill_expr("billing>=5 & (spanish | catalan>=7) & !trainee")
    assert expr.names() == frozenset({"billing", "spanish", "catalan", "trainee"})
