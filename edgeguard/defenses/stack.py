"""Stacking: an ordered list of defenses, built from a spec a user types or from a config list.

    reverse_sigmoid(beta=0.7, gamma=0.4) | topk(k=3) | round(decimals=2)

Grammar (read by a tiny hand-written parser, never eval):
    stack   := "" | "none" | defense ("|" defense)*
    defense := NAME | NAME "(" [param ("," param)*] ")"
    param   := NAME "=" value
    value   := number | true | false | "double-quoted (JSON escapes)" | 'single-quoted' | bare-word
A bare word that is not a number or a boolean is a string (`misinformation=export/mis`); quote paths
holding spaces or any of ( ) | , = . The same stack as data, for a JSON config or manifest:
    [{"name": "reverse_sigmoid", "beta": 0.7, "gamma": 0.4}, {"name": "topk", "k": 3}, ...]
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeguard.defenses.adaptive_misinformation import AdaptiveMisinformation
from edgeguard.defenses.base import Defense, as_inputs, as_probs
from edgeguard.defenses.dcp import DCP
from edgeguard.defenses.high_confidence import HighConfidence
from edgeguard.defenses.label_only import LabelOnly
from edgeguard.defenses.mad import MAD
from edgeguard.defenses.noise import Noise
from edgeguard.defenses.reverse_sigmoid import ReverseSigmoid
from edgeguard.defenses.round import Round
from edgeguard.defenses.topk import TopK
from edgeguard.errors import EdgeguardError

# The registry: spec name -> class. A new defense is one module, one class, one entry here.
DEFENSES: dict[str, type[Defense]] = {
    cls.name: cls
    for cls in (
        ReverseSigmoid,
        TopK,
        Round,
        LabelOnly,
        HighConfidence,
        Noise,
        AdaptiveMisinformation,
        DCP,
        MAD,
    )
}


@dataclass(frozen=True)
class DefenseStack:
    """Defenses applied in order, each to the previous one's output; itself a defense-like callable.

    An empty stack answers the model's probabilities unchanged (validated, as float64).
    """

    defenses: tuple[Defense, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "defenses", tuple(self.defenses))
        for d in self.defenses:
            if not isinstance(d, Defense):
                raise EdgeguardError(f"a defense stack holds defenses, got {d!r}")

    def __call__(self, probs: np.ndarray, inputs: np.ndarray | None = None) -> np.ndarray:
        p = as_probs(probs)  # validated once: every defense's output is valid input for the next
        x = as_inputs(inputs, len(p))
        for d in self.defenses:
            p = d.apply(p, x)
        return p

    def __len__(self) -> int:
        return len(self.defenses)

    @property
    def keeps_top1(self) -> bool:
        """Each stage keeps its input's top class, so the stack keeps the model's."""
        return all(d.keeps_top1 for d in self.defenses)

    @property
    def sums_to_one(self) -> bool:
        """The last stage's promise (it holds for any valid input); an empty stack promises nothing."""
        return bool(self.defenses) and self.defenses[-1].sums_to_one

    @property
    def spec(self) -> str:
        return " | ".join(d.spec for d in self.defenses) or "none"

    def to_config(self) -> list[dict[str, Any]]:
        return [d.config() for d in self.defenses]

    @classmethod
    def from_config(cls, config: list[dict[str, Any]]) -> "DefenseStack":
        """From [{"name": "topk", "k": 3}, ...] (a parsed JSON config); missing params take defaults."""
        if not isinstance(config, (list, tuple)):
            raise EdgeguardError(
                f'a defense config is a list of {{"name": ..., param: value}} objects, got {type(config).__name__}'
            )
        defenses = []
        for i, item in enumerate(config):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise EdgeguardError(
                    f'defense config entry {i} must be an object with a "name" (e.g. {{"name": "topk", "k": 3}}), '
                    f"got {item!r}"
                )
            params = {k: v for k, v in item.items() if k != "name"}
            defenses.append(build_defense(item["name"], params))
        return cls(tuple(defenses))


def build_defense(name: str, params: dict[str, Any]) -> Defense:
    """Look a defense up by name and build it; every failure lists what would have been valid."""
    cls = DEFENSES.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, DEFENSES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise EdgeguardError(f"unknown defense '{name}'{hint}; valid defenses: {', '.join(sorted(DEFENSES))}")
    fields = dataclasses.fields(cls)
    valid = f"valid parameters of {name}: {cls.describe_parameters()}"
    names = {f.name for f in fields}
    for param in params:
        if param not in names:
            raise EdgeguardError(f"{name} has no parameter '{param}'; {valid}")
    for f in fields:
        if f.default is dataclasses.MISSING and f.name not in params:
            raise EdgeguardError(f"{name} needs a value for {f.name}; {valid}")
    try:
        return cls(**params)
    except EdgeguardError as e:
        raise EdgeguardError(f"{e}; {valid}") from None


# A quoted string, one punctuation mark, or a bare word running up to the next of them.
TOKEN = re.compile(r"""\s*(?:("(?:[^"\\]|\\.)*"|'[^']*')|([()|,=])|([^\s()|,="']+))""")
PUNCTUATION = set("()|,=")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
INT = re.compile(r"[-+]?\d+\Z")
FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?\Z")


@dataclass
class _Token:
    text: str
    at: int
    quoted: bool = False


def parse_stack(spec: str) -> DefenseStack:
    """Parse a stack spec ('' or 'none' is no defense); errors point at the offending character."""
    if not isinstance(spec, str):
        raise EdgeguardError(f"a defense spec is a string such as 'topk(k=3) | round(decimals=2)', got {spec!r}")
    if spec.strip().lower() in ("", "none"):
        return DefenseStack()
    tokens = _tokenize(spec)
    end = _Token("", len(spec))
    i = 0

    def fail(token: _Token, what: str) -> EdgeguardError:
        return EdgeguardError(
            f"cannot read defense spec: {what} at position {token.at}\n  {spec}\n  {' ' * token.at}^\n"
            f'write it like: reverse_sigmoid(beta=0.7, gamma=0.4) | topk(k=3) | round(decimals=2)'
        )

    def peek() -> _Token:
        return tokens[i] if i < len(tokens) else end

    def take(expected: str | None = None, name: bool = False) -> _Token:
        nonlocal i
        token = peek()
        if expected is not None and not is_punct(token, expected):
            raise fail(token, f"expected '{expected}', found {_show(token)}")
        if name and (token.quoted or not NAME.match(token.text)):
            raise fail(token, f"expected a defense name, found {_show(token)}")
        i += 1
        return token

    defenses = []
    while True:
        head = take(name=True)
        params: dict[str, Any] = {}
        if is_punct(peek(), "("):
            take("(")
            while not is_punct(peek(), ")"):
                key = take()
                if key.quoted or not NAME.match(key.text) or not is_punct(peek(), "="):
                    raise fail(key, f"expected a parameter written name=value, found {_show(key)}")
                take("=")
                value = take()
                if value is end or (not value.quoted and value.text in PUNCTUATION):
                    raise fail(value, f"expected a value for '{key.text}', found {_show(value)}")
                if key.text in params:
                    raise fail(key, f"'{key.text}' is given twice")
                params[key.text] = _value(value)
                if not is_punct(peek(), ")") and not is_punct(peek(), ","):
                    raise fail(peek(), f"expected ',' or ')' after {key.text}={value.text}, found {_show(peek())}")
                if is_punct(peek(), ","):
                    take(",")
            take(")")
        try:
            defenses.append(build_defense(head.text, params))
        except EdgeguardError as e:
            raise EdgeguardError(f"in defense spec at position {head.at}: {e}") from None
        if peek() is end:
            return DefenseStack(tuple(defenses))
        take("|")


def _tokenize(spec: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(spec):
        m = TOKEN.match(spec, pos)
        if m is None:
            if spec[pos:].strip() == "":
                break
            at = len(spec) - len(spec[pos:].lstrip())
            raise EdgeguardError(
                f"cannot read defense spec: unterminated quote at position {at}\n  {spec}\n  {' ' * at}^"
            )
        quoted, punct, word = m.groups()
        text = quoted or punct or word
        tokens.append(_Token(text, m.start(m.lastindex), quoted is not None))
        pos = m.end()
    return tokens


def is_punct(token: _Token, mark: str) -> bool:
    return token.text == mark and not token.quoted


def _value(token: _Token) -> Any:
    """A value token as a Python value: quoted -> str; true/false -> bool; numbers; else the word."""
    text = token.text
    if token.quoted and text.startswith("'"):
        return text[1:-1]
    if token.quoted:
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise EdgeguardError(
                f"cannot read defense spec: bad escape in {text} at position {token.at}: {e.msg}"
            ) from None
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if INT.match(text):
        return int(text)
    if FLOAT.match(text):
        return float(text)
    return text


def _show(token: _Token) -> str:
    return f"'{token.text}'" if token.text else "the end of the spec"
