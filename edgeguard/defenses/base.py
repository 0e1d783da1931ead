"""What every post-hoc defense shares: validated parameters, a spec string, and row-wise helpers.

A defense runs on the device after the model, on the probabilities it is about to answer with:
`defense(probs (n, classes), inputs=None) -> (n, classes)`. Each defense is a frozen dataclass whose
fields are its parameters, so the spec a user typed, the object and its config dict are one thing.

Rules every defense keeps (the property tests check them all):
- each row is answered on its own: `defense(batch)[i] == defense(batch[i:i+1])[0]`, bit for bit, so a
  caller cannot learn anything by choosing what else goes in the batch;
- randomness is a function of the query (`row_rngs`): the same query gets the same answer, so
  asking twice and averaging gains nothing;
- outputs are finite and non-negative; a row that a cut leaves with no mass becomes the one-hot of
  the input's top class (`fill_empty_rows`): the label-only answer keeps the answer, reveals nothing
  more, and never divides by zero.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterator

import numpy as np

from edgeguard.errors import EdgeguardError

EPS = 1e-9  # p is clipped to [EPS, 1 - EPS] before a logit: log(0) would be -inf
SLACK = 1e-6  # float32 softmax rows can overshoot 1 by a few ulps; more than this is not a probability

# How a parameter's type reads in an error message; other types name themselves in field metadata.
KINDS = {float: "number", int: "whole number", bool: "true/false", str: "string"}


class Defense(ABC):
    """Base of every defense; subclasses are `@dataclass(frozen=True)` with one field per parameter.

    Class attributes each subclass sets:
    - `name`: the spec name (`reverse_sigmoid`);
    - `keeps_top1`: guaranteed `argmax(out) == argmax(probs)` per row (numpy's first-index rule for
      ties), so honest users who read the label lose no accuracy;
    - `sums_to_one`: every output row sums to 1 whatever valid rows come in (a stack may feed a
      defense rows that do not sum to 1, e.g. after `topk(renormalize=false)`).
    """

    name: ClassVar[str]
    keeps_top1: ClassVar[bool]
    sums_to_one: ClassVar[bool]

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(self.name, f.name, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # frozen: this is the one place values are set
        self.check()

    def check(self) -> None:
        """Validate parameter ranges with `self.require`; types are already checked."""

    def require(self, ok: bool, sentence: str) -> None:
        if not ok:
            raise EdgeguardError(f"{self.name}: {sentence}")

    def __call__(self, probs: np.ndarray, inputs: np.ndarray | None = None) -> np.ndarray:
        """probs (n, classes) -> served (n, classes) float64; inputs: the n queries, or None."""
        p = as_probs(probs)
        return self.apply(p, as_inputs(inputs, len(p)))

    @abstractmethod
    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        """probs: validated (n, classes) float64 in [0, 1], every row with mass (not mutated)."""

    @classmethod
    def describe_parameters(cls) -> str:
        """'beta (number, default 1.0), gamma (...)': what an error message lists as valid."""
        if not dataclasses.fields(cls):
            return "none (write it without parentheses)"
        hints = typing.get_type_hints(cls)
        parts = []
        for f in dataclasses.fields(cls):
            kind = f.metadata.get("kind") or KINDS[hints[f.name]]
            default = "required" if f.default is dataclasses.MISSING else f"default {format_value(f.default)}"
            parts.append(f"{f.name} ({kind}, {default})")
        return ", ".join(parts)

    def config(self) -> dict[str, Any]:
        """{"name": ..., param: value, ...}: the form a JSON manifest or config file holds."""
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    @property
    def spec(self) -> str:
        """Canonical spec: every parameter, in declaration order; `parse_stack` reads it back."""
        fields = dataclasses.fields(self)
        if not fields:
            return self.name
        args = ", ".join(f"{f.name}={format_value(getattr(self, f.name))}" for f in fields)
        return f"{self.name}({args})"


def _coerce(defense: str, param: str, hint: Any, value: Any) -> Any:
    """Check a value against its field type; ints are accepted (and stored) as floats for numbers."""
    kind = KINDS.get(hint)
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is not None:
        ok = isinstance(value, hint)
    else:
        return value  # a compound type (path or callable): the defense's check() validates it
    if not ok:
        raise EdgeguardError(f"{defense}: {param} must be a {kind}, got {value!r}")
    return value


def format_value(value: Any) -> str:
    """A parameter value as the spec grammar writes it (strings JSON-quoted, booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return f"<callable {getattr(value, '__qualname__', type(value).__name__)}>"


def as_probs(probs: Any) -> np.ndarray:
    """Validate a batch of probability rows; returns a float64 copy clipped to [0, 1].

    Rows need not sum to 1 (a stack may pass cut rows on), but each must hold some mass.
    A stack calls this once per query (not once per stage), so the checks are a few reductions:
    NaN propagates through min and max and an inf shows up in one of them, so two scalars say
    whether every value is finite.
    """
    try:
        p = np.array(probs, dtype=np.float64)  # always a copy: the caller's array is never touched
    except (TypeError, ValueError) as e:
        raise EdgeguardError(f"probabilities must be a numeric array: {e}") from e
    if p.ndim != 2 or p.shape[1] < 2:
        raise EdgeguardError(
            f"defenses take a batch of probability rows of shape (n, classes) with classes >= 2, "
            f"got shape {p.shape}; for a single vector pass probs[None]"
        )
    if not p.size:
        return p
    low, high = p.min(), p.max()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise EdgeguardError("probabilities must be finite; got NaN or inf")
    if low < 0 or high > 1 + SLACK:
        raise EdgeguardError(
            f"probabilities must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]: "
            f"pass softmax outputs, not logits"
        )
    if low == 0:  # only then can a row be all zeros (softmax rows rarely hold an exact 0)
        mass = p.sum(axis=1)
        if mass.min() <= 0:
            raise EdgeguardError(f"every probability row needs some mass; row {np.flatnonzero(mass <= 0)[0]} is all zeros")
    if high > 1:
        np.minimum(p, 1.0, out=p)
    return p


def as_inputs(inputs: Any, n: int) -> np.ndarray | None:
    if inputs is None:
        return None
    x = np.asarray(inputs)
    if x.ndim == 0 or len(x) != n:
        raise EdgeguardError(
            f"inputs must hold one query per probability row: got {x.shape} for {n} rows"
        )
    return x


def one_hot(probs: np.ndarray) -> np.ndarray:
    """Each row's top class (numpy's first index among ties) as a one-hot row."""
    out = np.zeros_like(probs)
    out[np.arange(len(probs)), probs.argmax(axis=1)] = 1.0
    return out


def has_empty(mass: np.ndarray) -> bool:
    """Whether any row mass is <= 0 (or NaN): one reduction, cheaper than a boolean array's any()."""
    return mass.size > 0 and not mass.min() > 0


def fill_empty_rows(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Rows of `x` with no mass left become the one-hot of `probs`' top class (the label-only answer)."""
    mass = x.sum(axis=1)
    if has_empty(mass):
        empty = mass <= 0
        x = x.copy()
        x[empty] = one_hot(probs[empty])
    return x


def normalize_rows(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Scale non-negative rows to sum to 1; an empty row falls back as in `fill_empty_rows`."""
    mass = x.sum(axis=1, keepdims=True)
    if has_empty(mass):  # rare: only then pay for the fallback and a second sum
        x = fill_empty_rows(x, probs)
        mass = x.sum(axis=1, keepdims=True)
    return x / mass


def clip01_(x: np.ndarray) -> np.ndarray:
    """np.clip(x, 0, 1) in place, as its two ufuncs: the same values at half np.clip's call cost."""
    np.maximum(x, 0.0, out=x)
    return np.minimum(x, 1.0, out=x)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow warnings for |z| in the hundreds (nu = 1000 gates)."""
    t = np.negative(z)  # then in place: exp(-logaddexp(0, -z)), one allocation
    np.logaddexp(0.0, t, out=t)
    np.negative(t, out=t)
    return np.exp(t, out=t)


def logit(p: np.ndarray) -> np.ndarray:
    """log(p) - log(1 - p) with p clipped to [EPS, 1 - EPS] (as np.clip would, in two ufuncs)."""
    q = np.maximum(p, EPS)
    np.minimum(q, 1.0 - EPS, out=q)
    out = np.log(q)
    np.negative(q, out=q)
    return np.subtract(out, np.log1p(q, out=q), out=out)


def confidence_gate(probs: np.ndarray, threshold: float, sharpness: float) -> np.ndarray:
    """alpha = 1 / (1 + exp(sharpness * (max p - threshold))), shape (n, 1).

    ~1 for queries the model is unsure about (max p below the threshold: likely out of
    distribution, what a thief's transfer set looks like), ~0 for confident, in-distribution ones.
    """
    return sigmoid(-sharpness * (probs.max(axis=1, keepdims=True) - threshold))


def row_rngs(key: str, probs: np.ndarray, inputs: np.ndarray | None) -> Iterator[np.random.Generator]:
    """One generator per row, seeded from a keyed BLAKE2b hash of that row's query.

    The query is the row of `inputs` (as float32 bytes) when given, else the row of `probs` (float64
    bytes). Same query, same draw: repeating a query and averaging the answers removes no noise.
    The key is a per-deployment secret: without it, nobody can recompute (and subtract) the noise.
    """
    secret = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=32).digest()
    rows, dtype = (probs, np.float64) if inputs is None else (inputs, np.float32)
    for row in rows:
        data = np.ascontiguousarray(row, dtype=dtype).tobytes()
        digest = hashlib.blake2b(data, key=secret, digest_size=16).digest()
        yield np.random.default_rng(int.from_bytes(digest, "little"))
