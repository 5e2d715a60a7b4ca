"""Tests for routing.conditions: grammar, type checks at load time, canonical form, evaluation."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.conditions import (
    And,
    Call,
    Compare,
    Condition,
    ConditionError,
    ConditionSchema,
    FunctionSpec,
    InList,
    Literal,
    Member,
    Not,
    Or,
    Value,
    ValueType,
    Variable,
    parse_condition,
)

NUM, STR, BOOL = ValueType.NUMBER, ValueType.STRING, ValueType.BOOL
SCHEMA = ConditionSchema(
    variables={
        "queue_length": NUM,
        "ewt": NUM,
        "priority": NUM,
        "caller": STR,
        "dialled": STR,
        "contact.tier": STR,
        "vip": BOOL,
        "open": BOOL,
    },
    functions={
        "ready": FunctionSpec((STR,), NUM),
        "site_status": FunctionSpec((STR,), STR),
        "open_at": FunctionSpec((STR, NUM), BOOL),
        "now_hour": FunctionSpec((), NUM),
    },
    lists={"vip_list": STR, "vip": STR, "blocked numbers": STR, "priorities": NUM},
)


class FakeContext:
    """Values the engine would supply; anything absent is unknown (None)."""

    def __init__(
        self,
        variables: dict[str, object] | None = None,
        calls: dict[tuple[str, tuple[Value, ...]], object] | None = None,
        lists: dict[str, set[Value]] | None = None,
    ) -> None:
        self.variables = variables or {}
        self.calls = calls or {}
        self.lists = lists or {}
        self.asked: list[str] = []

    def variable(self, name: str) -> Value | None:
        self.asked.append(name)
        return self.variables.get(name)  # type: ignore[return-value]  # deliberately untyped

    def call(self, function: str, args: tuple[Value, ...]) -> Value | None:
        self.asked.append(f"{function}{args}")
        return self.calls.get((function, args))  # type: ignore[return-value]

    def in_list(self, list_name: str, value: Value) -> bool:
        self.asked.append(f"in {list_name}")
        return value in self.lists.get(list_name, set())


def parse(text: str) -> Condition:
    return parse_condition(text, SCHEMA)


def holds(text: str, ctx: FakeContext | None = None) -> bool:
    return parse(text).evaluate(ctx or FakeContext())


def var(name: str) -> Variable:
    return Variable(name, SCHEMA.variables[name])


def num(value: float) -> Literal:
    return Literal(float(value), NUM)


def text(value: str) -> Literal:
    return Literal(value, STR)


# --- the operators' examples -------------------------------------------------------------------

BUSY = FakeContext(
    variables={"queue_length": 30, "ewt": 12.0, "priority": 1, "caller": "+44700", "dialled": "x"},
    calls={("ready", ("group_b",)): 5, ("site_status", ("north",)): "operational"},
    lists={"vip_list": {"+44700"}, "vip": {"+44999"}},
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('queue_length > 25 and ready("group_b") >= 4', True),
        ("caller in vip_list", True),
        ('caller in list("vip")', False),
        ('dialled in ["0800123", "0800456"]', False),
        ("not (ewt > 30) or priority >= 5", True),
        ('contact.tier == "gold" and site_status("north") != "down"', False),
    ],
)
def test_operator_examples_parse_and_evaluate(condition: str, expected: bool) -> None:
    assert parse(condition).evaluate(BUSY) is expected


def test_example_tree_shape() -> None:
    assert parse('queue_length > 25 and ready("group_b") >= 4').expr == And(
        (
            Compare(">", var("queue_length"), num(25)),
            Compare(">=", Call("ready", (text("group_b"),), NUM), num(4)),
        )
    )


# --- precedence ---------------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    assert parse("vip or open and vip").expr == Or((var("vip"), And((var("open"), var("vip")))))
    assert parse("vip and open or vip").expr == Or((And((var("vip"), var("open"))), var("vip")))


def test_not_binds_tighter_than_and_but_looser_than_comparison() -> None:
    assert parse("not vip and open").expr == And((Not(var("vip")), var("open")))
    assert parse("not ewt > 30").expr == Not(Compare(">", var("ewt"), num(30)))
    assert parse("not not vip").expr == Not(Not(var("vip")))


def test_parentheses_override_and_redundant_ones_vanish() -> None:
    assert parse("(vip or open) and vip").expr == And((Or((var("vip"), var("open"))), var("vip")))
    assert parse("((vip))") == parse("vip")
    assert parse("vip and (open and vip)") == parse("vip and open and vip")
    assert parse("vip and (open and vip)").expr == And((var("vip"), var("open"), var("vip")))


def test_keywords_are_case_insensitive_and_spacing_free() -> None:
    assert parse("NOT vip AND open Or TRUE") == parse("not vip and open or true")
    assert parse("ewt>3and vip") == parse("ewt > 3 and vip")


# --- each operator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "results"),  # ewt = 10 compared with 5, 10, 20
    [
        ("==", (False, True, False)),
        ("!=", (True, False, True)),
        ("<", (False, False, True)),
        ("<=", (False, True, True)),
        (">", (True, False, False)),
        (">=", (True, True, False)),
    ],
)
def test_comparison_operators(op: str, results: tuple[bool, bool, bool]) -> None:
    ctx = FakeContext({"ewt": 10})
    assert tuple(holds(f"ewt {op} {n}", ctx) for n in (5, 10, 20)) == results


def test_string_and_boolean_equality() -> None:
    ctx = FakeContext({"contact.tier": "gold", "vip": True})
    assert holds("contact.tier == 'gold'", ctx)
    assert holds('contact.tier != "silver"', ctx)
    assert holds("vip == true and vip != false", ctx)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("vip and open", False),
        ("vip or open", True),
        ("not open", True),
        ("vip and not open", True),
        ("true", True),
        ("false or vip", True),
    ],
)
def test_boolean_connectives(condition: str, expected: bool) -> None:
    assert holds(condition, FakeContext({"vip": True, "open": False})) is expected


def test_numbers_strings_and_escapes() -> None:
    ctx = FakeContext({"ewt": -2.5, "caller": 'say "hi"\\'})
    assert holds("ewt == -2.5 and ewt < 1e3", ctx)
    assert holds(r"caller == 'say \"hi\"\\'", ctx)
    assert holds(r'caller == "say \"hi\"\\"', ctx)
    assert parse("caller == 'it\\'s'").expr == Compare("==", var("caller"), text("it's"))


# --- lists --------------------------------------------------------------------------------------


def test_literal_lists() -> None:
    ctx = FakeContext({"dialled": "0800456", "priority": 3})
    assert holds('dialled in ["0800123", "0800456"]', ctx)
    assert not holds("dialled in ['0800123']", ctx)
    assert holds("priority in [1, 3, 5]", ctx)
    assert holds('dialled not in ["0800123"]', ctx)
    assert parse('dialled not in ["1"]').expr == Not(Member(var("dialled"), (text("1"),)))


def test_named_lists_by_name_or_by_list_function() -> None:
    ctx = FakeContext({"caller": "+1"}, lists={"vip": {"+1"}, "blocked numbers": {"+2"}})
    assert (
        parse("caller in vip") == parse('caller in list("vip")') == parse("caller in list('vip')")
    )
    assert parse("caller in vip").expr == InList(var("caller"), "vip")
    assert holds("caller in vip", ctx)
    assert not holds('caller in list("blocked numbers")', ctx)
    assert holds('caller not in list("blocked numbers")', ctx)
    assert not holds("caller in vip_list", ctx)  # known but empty today


def test_named_list_of_numbers() -> None:
    assert holds("priority in priorities", FakeContext({"priority": 2}, lists={"priorities": {2}}))


# --- functions and what a condition needs -------------------------------------------------------


def test_function_calls_with_zero_one_and_two_arguments() -> None:
    ctx = FakeContext(
        calls={("now_hour", ()): 9, ("open_at", ("north", 9.0)): True, ("ready", ("a",)): 0}
    )
    assert holds("now_hour() >= 9 and open_at('north', 9) and ready('a') == 0", ctx)
    assert ctx.asked == ["now_hour()", "open_at('north', 9.0)", "ready('a',)"]


def test_variables_functions_and_lists_needed() -> None:
    condition = parse(
        'queue_length > 25 and ready("b") >= 4 or ready("c") > 1 and caller in vip '
        'and not (dialled in ["1"]) and contact.tier == "gold" and queue_length < 99'
    )
    assert condition.variables() == {"queue_length", "caller", "dialled", "contact.tier"}
    assert condition.functions() == {
        Call("ready", (text("b"),), NUM),
        Call("ready", (text("c"),), NUM),
    }
    assert {(c.function, tuple(a.value for a in c.args)) for c in condition.functions()} == {
        ("ready", ("b",)),
        ("ready", ("c",)),
    }
    assert condition.lists() == {"vip"}
    assert parse("true").variables() == frozenset()


def test_and_or_short_circuit_so_unneeded_statistics_are_not_fetched() -> None:
    ctx = FakeContext({"vip": False})
    assert not holds("vip and ready('a') > 1", ctx)
    assert ctx.asked == ["vip"]


# --- canonical form -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        (
            "queue_length>25.0 AND ready('group_b')>=4",
            'queue_length > 25 and ready("group_b") >= 4',
        ),
        ("caller in list('blocked numbers')", 'caller in list("blocked numbers")'),
        ("caller in list('vip')", "caller in vip"),
        ("dialled in ['0800123','0800456']", 'dialled in ["0800123", "0800456"]'),
        ("not(ewt>30)or priority>=5", "not (ewt > 30) or priority >= 5"),
        ("caller not in vip_list", "not (caller in vip_list)"),
        ("((vip or open)) and (vip)", "(vip or open) and vip"),
        ("not (vip and open)", "not (vip and open)"),
        ("not not vip", "not not vip"),
        ("(ewt > 1) == (not vip)", "(ewt > 1) == (not vip)"),
        (
            "ewt > 0.5 and ewt < 1e20 and ewt != -1e-7",
            "ewt > 0.5 and ewt < 1e+20 and ewt != -1e-07",
        ),
        ("caller == 'a\"b\\\\c'", 'caller == "a\\"b\\\\c"'),
        ("ewt == -0", "ewt == 0"),
        ("vip == TRUE", "vip == true"),
    ],
)
def test_canonical_form(written: str, canonical: str) -> None:
    condition = parse(written)
    assert str(condition) == canonical
    assert parse(canonical) == condition


def test_conditions_are_immutable_and_hashable() -> None:
    condition = parse("vip and ewt > 3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        condition.expr = Literal(True, BOOL)  # type: ignore[misc]
    assert len({condition, parse("vip AND (ewt > 3.0)"), parse("vip and ewt > 4")}) == 2


def test_true_and_one_stay_distinct() -> None:
    assert parse("true == true") != parse("1 == 1")
    assert len({parse("true == true"), parse("1 == 1")}) == 2


# --- errors: every class, with message and column -----------------------------------------------


def test_the_documented_type_error_message() -> None:
    with pytest.raises(ConditionError) as raised:
        parse('queue_length > "x"')
    assert str(raised.value) == (
        "condition 'queue_length > \"x\"': cannot compare number with string at column 16"
    )
    assert raised.value.column == 16


@pytest.mark.parametrize(
    ("condition", "message", "column"),
    [
        # lexical
        ("queue_length = 5", "unexpected character '=' at column 14", 14),
        ("ewt > 1 & vip", "unexpected character '&' at column 9", 9),
        ("caller == 'abc", "unterminated string at column 11", 11),
        ("ewt > 1e999", "number 1e999 out of range at column 7", 7),
        # syntax
        ("queue_length >", "expected a value, found the end at column 15", 15),
        ("(vip or open", "expected ')', found the end at column 13", 13),
        ("vip and", "expected a value, found the end at column 8", 8),
        ("ewt > 1 ewt", "unexpected 'ewt' at column 9", 9),
        ("ewt > 1)", "unexpected ')' at column 8", 8),
        ("ewt < 2 < 3", "comparisons cannot be chained, join them with 'and' at column 9", 9),
        ("caller in", "expected a list, found the end at column 10", 10),
        ("caller in ['a'", "expected ']', found the end at column 15", 15),
        ("caller in []", "expected a number, string, true or false, found ']' at column 12", 12),
        ("caller in [dialled]", "expected a number, string, true or false, found 'dialled'", 12),
        ("ready('a' 'b') > 1", "expected ',' or ')', found \"'b'\" at column 11", 11),
        ("ready('a',) > 1", "expected a value, found ')' at column 11", 11),
        ("ready(caller) > 1", "found 'caller' at column 7", 7),
        ("caller in list(vip)", "found 'vip' at column 16", 16),
        ("vip or or open", "expected a value, found 'or' at column 8", 8),
        # schema: unknown names
        ("queue_lenght > 25", "unknown variable 'queue_lenght' at column 1", 1),
        ("idle('b') > 4", "unknown function 'idle' at column 1", 1),
        ("caller in vips", "unknown list 'vips' at column 11", 11),
        ("caller in list('vips')", "unknown list 'vips' at column 11", 11),
        # schema: functions
        ("ready() > 4", "ready() takes 1 argument(s), not 0 at column 1", 1),
        ("ready('a', 'b') > 4", "ready() takes 1 argument(s), not 2 at column 1", 1),
        ("ready(4) > 4", "argument 1 of ready() must be string, not number at column 7", 7),
        (
            "open_at('n', 'x')",
            "argument 2 of open_at() must be number, not string at column 14",
            14,
        ),
        # types
        ("ewt == vip", "cannot compare number with bool at column 8", 8),
        ("caller != 5", "cannot compare string with number at column 11", 11),
        ("ready('a') == site_status('a')", "cannot compare number with string at column 15", 15),
        ("caller < 'm'", "'<' needs numbers, not string at column 8", 8),
        ("vip >= true", "'>=' needs numbers, not bool at column 5", 5),
        ("caller in ['a', 1]", "list entries must be string, not number at column 17", 17),
        ("ewt in ['a']", "list entries must be number, not string at column 9", 9),
        ("ewt in vip_list", "cannot look up number in list 'vip_list' of string at column 8", 8),
        ("caller in list(1)", "a list name must be string, not number at column 16", 16),
        ("ewt and vip", "'and' needs true or false, not number at column 1", 1),
        ("vip and caller", "'and' needs true or false, not string at column 9", 9),
        ("vip or 5", "'or' needs true or false, not number at column 8", 8),
        ("not ewt", "'not' needs true or false, not number at column 5", 5),
        ("ewt", "condition must be true or false, not number at column 1", 1),
        ("  ready('a')", "condition must be true or false, not number at column 3", 3),
    ],
)
def test_errors_name_the_problem_and_column(condition: str, message: str, column: int) -> None:
    with pytest.raises(ConditionError) as raised:
        parse(condition)
    assert str(raised.value).startswith(f"condition {condition!r}: ")
    assert message in str(raised.value)
    assert raised.value.column == column


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_empty_condition(blank: str) -> None:
    with pytest.raises(ConditionError, match="empty condition"):
        parse(blank)


def test_error_is_a_value_error_for_config_loaders() -> None:
    assert issubclass(ConditionError, ValueError)


def test_an_empty_schema_rejects_every_name() -> None:
    with pytest.raises(ConditionError, match="unknown variable 'ewt'"):
        parse_condition("ewt > 1", ConditionSchema())
    assert parse_condition("1 < 2", ConditionSchema()).evaluate(FakeContext())


# --- evaluation with missing and malformed values -----------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "ewt > 30",
        "ewt <= 30",
        "ewt == 30",
        "ewt != 30",  # also false: an unknown value is not known to differ
        "vip",
        "vip == true",
        "vip != true",
        "caller in vip_list",
        "caller in ['a']",
        "ready('b') >= 0",
        "site_status('north') != 'down'",
        "open_at('north', 9)",
    ],
)
def test_missing_values_make_tests_false(condition: str) -> None:
    ctx = FakeContext(lists={"vip_list": {"a"}})
    assert holds(condition, ctx) is False
    assert "in vip_list" not in ctx.asked  # the engine is not asked about a missing value


def test_not_of_a_missing_value_is_true_as_documented() -> None:
    assert holds("not (ewt > 30)")
    assert not holds("ewt <= 30")  # the positive form stays false while ewt is unknown
    assert holds("not vip")


@pytest.mark.parametrize("bad", ["12", True, None, math.nan, [], object()], ids=repr)
def test_values_of_the_wrong_type_count_as_missing(bad: object) -> None:
    ctx = FakeContext({"ewt": bad, "caller": 7, "vip": 1}, calls={("ready", ("a",)): bad})
    assert not holds("ewt != 1 or ewt == 1", ctx)
    assert not holds("ready('a') != 1", ctx)
    assert not holds("caller != 'x'", ctx)
    assert not holds("vip", ctx)


def test_integers_from_the_engine_are_numbers() -> None:
    assert holds("ewt == 3 and ewt < 3.5", FakeContext({"ewt": 3}))


# --- properties ---------------------------------------------------------------------------------

_NUM_VARS = ["queue_length", "ewt", "priority"]
_STR_VARS = ["caller", "dialled", "contact.tier"]


def _keyword(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize()])


def _quoted(value: str, quote: str) -> str:
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


string_literals = st.builds(
    _quoted,
    st.text(st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(["'", '"']),
)
number_literals = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
numbers = st.one_of(
    number_literals,
    st.sampled_from(_NUM_VARS),
    string_literals.map(lambda s: f"ready({s})"),
    st.just("now_hour()"),
)
strings = st.one_of(
    string_literals,
    st.sampled_from(_STR_VARS),
    string_literals.map(lambda s: f"site_status({s})"),
)
comparisons = st.one_of(
    st.tuples(numbers, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), numbers),
    st.tuples(strings, st.sampled_from(["==", "!="]), strings),
).map(" ".join)
memberships = st.one_of(
    st.tuples(strings, st.lists(string_literals, min_size=1, max_size=3)).map(
        lambda p: f"{p[0]} in [{', '.join(p[1])}]"
    ),
    st.tuples(numbers, st.lists(number_literals, min_size=1, max_size=3)).map(
        lambda p: f"{p[0]} not in [{', '.join(p[1])}]"
    ),
    st.tuples(strings, st.sampled_from(["vip_list", "list('blocked numbers')", 'list("vip")'])).map(
        lambda p: f"{p[0]} in {p[1]}"
    ),
)
atoms = st.one_of(
    comparisons,
    memberships,
    st.sampled_from(["vip", "open", "true", "false", "open_at('x', 9)"]),
)
conditions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, _keyword("and"), inner).map(" ".join),
        st.tuples(inner, _keyword("or"), inner).map(" ".join),
        st.tuples(_keyword("not"), inner).map(" ".join),
        inner.map(lambda c: f"({c})"),
        st.tuples(inner, st.sampled_from(["==", "!="]), inner).map(
            lambda p: f"({p[0]}) {p[1]} ({p[2]})"
        ),
    ),
    max_leaves=12,
)
runtime_values = st.one_of(
    st.none(),
    st.floats(),
    st.integers(-100, 100),
    st.text(max_size=3),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(conditions)
def test_random_conditions_round_trip_through_canonical_form(written: str) -> None:
    condition = parse(written)
    canonical = str(condition)
    assert parse(canonical) == condition
    assert str(parse(canonical)) == canonical
    assert hash(parse(canonical)) == hash(condition)


@settings(max_examples=300, deadline=None)
@given(
    conditions,
    st.dictionaries(st.sampled_from([*_NUM_VARS, *_STR_VARS, "vip", "open"]), runtime_values),
    runtime_values,
    st.booleans(),
)
def test_random_conditions_never_raise_on_evaluation(
    written: str, variables: dict[str, object], call_result: object, listed: bool
) -> None:
    class AnyContext(FakeContext):
        def call(self, function: str, args: tuple[Value, ...]) -> Value | None:
            return call_result  # type: ignore[return-value]

        def in_list(self, list_name: str, value: Value) -> bool:
            return listed

    assert parse(written).evaluate(AnyContext(variables)) in (True, False)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("vip ewt()[],'\"\\<>=!.-1e")) | st.characters(), max_size=30))
def test_arbitrary_text_is_parsed_or_rejected_with_a_condition_error(written: str) -> None:
    try:
        condition = parse_condition(written, SCHEMA)
    except ConditionError as error:
        assert error.column is None or 1 <= error.column <= len(written) + 1
    else:
        assert parse(str(condition)) == condition
