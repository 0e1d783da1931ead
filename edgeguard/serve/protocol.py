"""The wire: request bodies in, validated numpy batches out, and answers back to JSON (no I/O).

Two request forms reach the same model:
- `POST /predict`: `{"inputs": [...]}`, a nested array of shape (n, C, H, W) or one (C, H, W) image;
- `POST /v2/models/{name}/infer` (Open Inference Protocol, KServe v2): `{"inputs": [{"name":
  "input", "shape": [n, C, H, W], "datatype": "FP32", "data": [...]}]}`, data flat or nested.

Everything a client can get wrong ends here as a `ClientError` with a 4xx status and one sentence
saying what was expected, so a bad request can never reach the model or cost budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson  # parses a 784-number body ~7x faster than the json module: most of a query's cost


@dataclass
class ClientError(Exception):
    """A request the server refuses: HTTP status, a metrics reason, a sentence, extra headers."""

    status: int
    reason: str  # label of edgeguard_rejected_total: invalid, too_large, unauthorized, ...
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def invalid(message: str) -> ClientError:
    return ClientError(400, "invalid", message)


@dataclass(frozen=True)
class InputSpec:
    """What one query looks like: the manifest's (C, H, W) and the per-request item limit."""

    shape: tuple[int, ...]
    max_batch: int
    name: str = "input"  # the v2 tensor name clients send and metadata advertises

    @property
    def batch_shape(self) -> str:
        return f"(n, {', '.join(map(str, self.shape))})"


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError) as e:
        raise invalid(
            f"the body must be valid JSON (NaN, Infinity and numbers beyond float range are not JSON): {e}"
        ) from None


def to_batch(data: Any, spec: InputSpec) -> np.ndarray:
    """A nested array of numbers -> validated (n, C, H, W) float32 in [0, 1], 1 <= n <= max_batch."""
    expected = f"a nested array of numbers in [0, 1] of shape {spec.batch_shape} or {spec.shape}"
    try:
        x = np.asarray(data)
    except (ValueError, TypeError, RecursionError):  # ragged nesting
        raise invalid(f"inputs must be {expected}; the nested lists have uneven lengths") from None
    if x.dtype.kind not in "iuf":
        raise invalid(f"inputs must be {expected}; found non-numeric values ({_kind(x)})")
    if x.shape == spec.shape:
        x = x[None]
    if x.ndim != len(spec.shape) + 1 or x.shape[1:] != spec.shape:
        raise invalid(f"inputs must be {expected}; got shape {x.shape}")
    return check_items(x, spec)


def check_items(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The checks every batch passes whatever its envelope: item count, values in [0, 1]."""
    n = len(x)
    if n == 0:
        raise invalid("inputs hold no items; send at least one")
    if n > spec.max_batch:
        raise invalid(f"a request may hold at most {spec.max_batch} items, got {n}; split it")
    lo, hi = float(x.min()), float(x.max())
    if not (lo >= 0.0 and hi <= 1.0):  # written so that a NaN fails it too
        raise invalid(f"inputs must be pixel values scaled to [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x.astype(np.float32, copy=False)


def _kind(x: np.ndarray) -> str:
    return {"b": "true/false", "U": "strings", "S": "strings"}.get(x.dtype.kind, "null, objects or huge integers")


def parse_predict(body: bytes, spec: InputSpec) -> np.ndarray:
    request = parse_json(body)
    if not isinstance(request, dict) or "inputs" not in request:
        raise invalid(f'the body must be a JSON object {{"inputs": [...]}} holding an array of shape {spec.batch_shape}')
    return to_batch(request["inputs"], spec)


@dataclass(frozen=True)
class InferRequest:
    x: np.ndarray
    id: str | None
    outputs: tuple[str, ...] | None  # names the client asked for; None: all


def parse_infer(body: bytes, spec: InputSpec, outputs: tuple[str, ...]) -> InferRequest:
    """A v2 infer body -> the batch; `outputs` are the tensor names this deployment answers with."""
    request = parse_json(body)
    example = f'{{"inputs": [{{"name": "{spec.name}", "shape": [n, {", ".join(map(str, spec.shape))}], "datatype": "FP32", "data": [...]}}]}}'
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or len(request["inputs"]) != 1:
        raise invalid(f"a v2 infer body holds exactly one input tensor: {example}")
    tensor = request["inputs"][0]
    if not isinstance(tensor, dict):
        raise invalid(f"a v2 input tensor is an object: {example}")
    if tensor.get("name") != spec.name:
        raise invalid(f"the input tensor must be named '{spec.name}', got {tensor.get('name')!r}")
    if tensor.get("datatype") != "FP32":
        raise invalid(f"the input datatype must be FP32, got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or tuple(shape[1:]) != spec.shape
        or shape[0] < 0
    ):
        raise invalid(f"the input shape must be [n, {', '.join(map(str, spec.shape))}], got {shape!r}")
    if shape[0] > spec.max_batch:  # before touching the data: it may be large
        raise invalid(f"a request may hold at most {spec.max_batch} items, got {shape[0]}; split it")
    try:
        data = np.asarray(tensor.get("data"))
    except (ValueError, TypeError, RecursionError):
        raise invalid("the input data must be an array of numbers (flat or nested), not ragged lists") from None
    if data.dtype.kind not in "iuf":
        raise invalid(f"the input data must be numbers in [0, 1]; found non-numeric values ({_kind(data)})")
    if data.size != math.prod(shape):
        raise invalid(f"the input data holds {data.size} numbers; shape {shape} needs {math.prod(shape)}")
    wanted = _requested_outputs(request.get("outputs"), outputs)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise invalid(f"the request id must be a string, got {request_id!r}")
    return InferRequest(check_items(data.reshape(shape), spec), request_id, wanted)


def _requested_outputs(requested: Any, available: tuple[str, ...]) -> tuple[str, ...] | None:
    if requested is None:
        return None
    names = [o.get("name") if isinstance(o, dict) else None for o in requested] if isinstance(requested, list) else [None]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise invalid(f'"outputs" must list objects {{"name": ...}} naming some of: {", ".join(available)}; got {unknown[0]!r}')
    return tuple(names)


def v2_datatype(value: np.ndarray) -> str:
    """FP64 for probabilities: the defended values are float64, and a client gets them exactly."""
    return "INT64" if value.dtype.kind in "iu" else "FP64"


def v2_tensor(name: str, value: np.ndarray) -> dict[str, Any]:
    """A numpy answer as a v2 output tensor (data flattened row-major, as the protocol writes it)."""
    return {"name": name, "datatype": v2_datatype(value), "shape": list(value.shape), "data": value.ravel().tolist()}


def dumps(payload: Any) -> bytes:
    """JSON bytes; floats in shortest round-trip form, so a client reads back the exact float64."""
    return orjson.dumps(payload)
