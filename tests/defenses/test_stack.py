from __future__ import annotations

import json

import numpy as np
import pytest

from edgeguard.defenses import (
    DEFENSES,
    AdaptiveMisinformation,
    DefenseStack,
    LabelOnly,
    ReverseSigmoid,
    Round,
    TopK,
    parse_stack,
)
from edgeguard.errors import EdgeguardError

from .helpers import misinformation

EXAMPLE = "reverse_sigmoid(beta=0.7,gamma=0.4) | topk(k=3) | round(decimals=2)"
CANONICAL = "reverse_sigmoid(beta=0.7, gamma=0.4) | topk(k=3, renormalize=true) | round(decimals=2)"
P = np.array([[0.6, 0.2, 0.1, 0.06, 0.04], [0.05, 0.05, 0.1, 0.3, 0.5]])


def test_parses_the_example_and_prints_it_back_canonically() -> None:
    stack = parse_stack(EXAMPLE)
    assert stack == DefenseStack((ReverseSigmoid(0.7, 0.4), TopK(3), Round(2)))
    assert stack.spec == CANONICAL
    assert parse_stack(CANONICAL) == stack


def test_applies_the_defenses_in_order() -> None:
    expected = Round(2)(TopK(3)(ReverseSigmoid(0.7, 0.4)(P)))
    np.testing.assert_array_equal(parse_stack(EXAMPLE)(P), expected)


@pytest.mark.parametrize("spec", ["", "  ", "none", "None", " NONE "])
def test_empty_or_none_is_no_defense(spec: str) -> None:
    stack = parse_stack(spec)
    assert len(stack) == 0 and stack.spec == "none"
    np.testing.assert_array_equal(stack(P), P)
    assert stack.keeps_top1 and not stack.sums_to_one


def test_promises_combine() -> None:
    assert parse_stack("topk(k=2) | label_only").keeps_top1
    assert not parse_stack("topk(k=2) | reverse_sigmoid").keeps_top1
    assert parse_stack("round(decimals=2) | topk(k=2)").sums_to_one
    assert not parse_stack("topk(k=2) | round(decimals=2)").sums_to_one


def test_whitespace_quotes_and_spellings() -> None:
    stack = parse_stack("  topk ( k = 2 , renormalize = False )|label_only()|noise(key='a b|c')  ")
    assert stack.spec == 'topk(k=2, renormalize=false) | label_only | noise(scale=0.2, key="a b|c")'
    assert parse_stack('noise(key="quote \\" and ( , = |")').defenses[0].key == 'quote " and ( , = |'
    assert parse_stack("reverse_sigmoid(beta=1, gamma=1e-1)") == DefenseStack((ReverseSigmoid(1.0, 0.1),))


def test_config_round_trip_through_json() -> None:
    stack = parse_stack(EXAMPLE + " | noise(key=\"s\") | label_only")
    config = json.loads(json.dumps(stack.to_config()))
    assert config[1] == {"name": "topk", "k": 3, "renormalize": True}
    assert DefenseStack.from_config(config) == stack
    assert DefenseStack.from_config([{"name": "topk", "k": 3}]).spec == "topk(k=3, renormalize=true)"


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(EdgeguardError, match="did you mean 'reverse_sigmoid'") as e:
        parse_stack("topk(k=3) | revers_sigmoid")
    assert all(name in str(e.value) for name in DEFENSES)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("topk(k=3, q=1)", "topk has no parameter 'q'; valid parameters of topk: k .*renormalize"),
        ("topk", "topk needs a value for k; valid parameters of topk"),
        ("topk(k=0)", "k must be >= 1.*valid parameters of topk"),
        ("topk(k=2.5)", "k must be a whole number"),
        ("topk(k=true)", "k must be a whole number"),
        ("topk(k=2, renormalize=1)", "renormalize must be a true/false"),
        ("reverse_sigmoid(beta=inf)", "beta must be a number"),
        ("reverse_sigmoid(beta=yes)", "beta must be a number"),
        ("label_only(x=1)", "valid parameters of label_only: none"),
    ],
)
def test_bad_parameters_list_the_valid_ones(spec: str, message: str) -> None:
    with pytest.raises(EdgeguardError, match=message):
        parse_stack(spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("topk(3)", "expected a parameter written name=value, found '3' at position 5"),
        ("topk(k=3", "expected ',' or '\\)' after k=3, found the end of the spec"),
        ("topk(k=)", "expected a value for 'k'"),
        ("topk(k=3, k=4)", "'k' is given twice"),
        ("topk(k=3) |", "expected a defense name, found the end"),
        ("topk(k=3) label_only", "expected '\\|', found 'label_only'"),
        ("| topk(k=3)", "expected a defense name, found '\\|'"),
        ("noise(key=\"abc)", "unterminated quote"),
        ("noise(key=\"a\\qb\")", "bad escape"),
        ("__import__('os')", "expected a parameter"),
    ],
)
def test_syntax_errors_point_at_the_problem(spec: str, message: str) -> None:
    with pytest.raises(EdgeguardError, match=message):
        parse_stack(spec)


def test_a_spec_is_a_string() -> None:
    with pytest.raises(EdgeguardError, match="a defense spec is a string"):
        parse_stack(None)


def test_a_callable_shows_in_the_spec_but_cannot_be_typed() -> None:
    stack = DefenseStack((AdaptiveMisinformation(tau=0.5, misinformation=misinformation),))
    assert stack.spec == "adaptive_misinformation(tau=0.5, misinformation=<callable misinformation>, nu=1000.0)"
    with pytest.raises(EdgeguardError):
        parse_stack(stack.spec)


@pytest.mark.parametrize("config", [{"name": "topk"}, [{"k": 3}], ["topk"], [{"name": "topk", "k": 0}]])
def test_bad_configs_say_what_is_expected(config) -> None:
    with pytest.raises(EdgeguardError):
        DefenseStack.from_config(config)


def test_a_stack_holds_only_defenses() -> None:
    with pytest.raises(EdgeguardError, match="holds defenses"):
        DefenseStack((LabelOnly(), np.round))


def test_every_registered_defense_declares_itself() -> None:
    for name, cls in DEFENSES.items():
        assert cls.name == name
        assert "Source:" in (cls.__doc__ or ""), f"{name} needs its paper in the class docstring"
        assert isinstance(cls.keeps_top1, bool)
        assert isinstance(cls.sums_to_one, bool) or name == "topk"  # topk's depends on renormalize
