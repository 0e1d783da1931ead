"""The wire: request bodies in, validated numpy batches or image files out, and answers back to JSON (no I/O).

Two routes reach the same model:
- `POST /predict`: `{"inputs": [...]}`, a nested array of shape (n, C, H, W) or one (C, H, W) image;
  or one image file as the body (`Content-Type: image/jpeg`, png, webp, bmp, gif); or
  `multipart/form-data` with one `file` part per image (`curl -F file=@a.jpg -F file=@b.jpg`);
- `POST /v2/models/{name}/infer` (Open Inference Protocol, KServe v2): `{"inputs": [{"name":
  "input", "shape": [n, C, H, W], "datatype": "FP32", "data": [...]}]}`, data flat or nested; or a
  `BYTES` tensor of shape [n] whose data are base64-encoded image files.

Image files leave here as `ImageFiles`, counted but not decoded: the service decodes them (with
`decode`, the model's `ImageSpec`) only once the key may be answered. Everything a client can get
wrong ends here or in `decode` as a `ClientError` with a 4xx status and one sentence saying what was
expected, so a bad request can never reach the model or cost budget.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import orjson  # parses a 784-number body ~7x faster than the json module: most of a query's cost
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from edgeguard.runtime.preprocess import FILE_FORMATS, FILE_TYPES, ImageError, ImageSpec, ImageTooLarge, UnsupportedImage

# the multipart parser logs each malformed body at WARNING: a client's mistake, answered with a 400
# that says so, not worth a log line per request (a flood of them would flood the log)
logging.getLogger("python_multipart.multipart").setLevel(logging.ERROR)


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


@dataclass(frozen=True)
class ImageFiles:
    """The image files of one request, in order, not yet decoded; `names` say which is which in errors."""

    files: tuple[bytes, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)


Batch = Union[np.ndarray, ImageFiles]  # what a request asks about: validated pixels, or files to decode


def unsupported(message: str) -> ClientError:
    return ClientError(415, "unsupported", message)


def decode(images: ImageFiles, spec: ImageSpec) -> np.ndarray:
    """Every file -> one (n, C, H, W) float32 batch in [0, 1]; the first bad file refuses the request whole."""
    x = []
    for data, name in zip(images.files, images.names):
        try:
            x.append(spec.load(data, FILE_FORMATS))
        except ImageTooLarge as e:
            raise ClientError(413, "too_large", f"{name}: {e}") from None
        except UnsupportedImage as e:
            raise unsupported(f"{name}: {e}") from None
        except ImageError as e:
            raise invalid(f"{name}: {e}") from None
    return np.stack(x)


def check_count(images: ImageFiles, spec: InputSpec) -> ImageFiles:
    if len(images) == 0:
        raise invalid("the request holds no image file; send at least one (curl -F file=@photo.jpg)")
    if len(images) > spec.max_batch:
        raise invalid(f"a request may hold at most {spec.max_batch} items, got {len(images)} files; split it")
    return images


def parse_multipart(body: bytes, boundary: bytes | None, spec: InputSpec) -> ImageFiles:
    """`multipart/form-data` -> the files of its parts, each of which must be named 'file'."""
    if not boundary:
        raise invalid("a multipart/form-data body needs a boundary in its Content-Type header")
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header = [b"", b""]  # the header field and value being read
    ended: list[bool] = []  # [True] once the closing boundary was read

    def on_header_end() -> None:
        parts[-1][0][header[0].lower()] = header[1]
        header[:] = [b"", b""]

    callbacks: Any = {
        "on_part_begin": lambda: parts.append(({}, bytearray())),
        "on_part_data": lambda data, start, end: parts[-1][1].extend(data[start:end]),
        "on_header_field": lambda data, start, end: header.__setitem__(0, header[0] + data[start:end]),
        "on_header_value": lambda data, start, end: header.__setitem__(1, header[1] + data[start:end]),
        "on_header_end": on_header_end,
        "on_end": lambda: ended.append(True),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as e:
        raise invalid(f"the multipart/form-data body is malformed: {e}") from None
    if not ended:
        raise invalid("the multipart/form-data body ends before its closing boundary; it was cut short")
    files, names = [], []
    for headers, data in parts:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("latin-1")
        if name != "file":
            raise invalid(f"each image must be a multipart part named 'file' (curl -F file=@photo.jpg); got a part named {name!r}")
        filename = options.get(b"filename", b"").decode("utf-8", "replace")
        files.append(bytes(data))
        names.append(f"file {len(files)}" + (f" ({filename!r})" if filename else ""))
    return check_count(ImageFiles(tuple(files), tuple(names)), spec)


def parse_predict(body: bytes, spec: InputSpec, content_type: str | None = None) -> Batch:
    """A /predict body by its Content-Type: an image file, multipart files, or (anything else) JSON."""
    media, options = parse_options_header(content_type or "")
    media = media.decode("latin-1").lower()
    if media in FILE_TYPES:
        return ImageFiles((body,), ("the body",))
    if media.startswith("image/"):
        raise unsupported(f"Content-Type {media} is not an image type this server decodes; send one of {', '.join(FILE_TYPES)}")
    if media == "multipart/form-data":
        return parse_multipart(body, options.get(b"boundary"), spec)
    request = parse_json(body)
    if not isinstance(request, dict) or "inputs" not in request:
        raise invalid(f'the body must be a JSON object {{"inputs": [...]}} holding an array of shape {spec.batch_shape}')
    return to_batch(request["inputs"], spec)


@dataclass(frozen=True)
class InferRequest:
    x: Batch
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
    wanted = _requested_outputs(request.get("outputs"), outputs)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise invalid(f"the request id must be a string, got {request_id!r}")
    if tensor.get("datatype") == "BYTES":
        return InferRequest(_image_tensor(tensor, spec), request_id, wanted)
    if tensor.get("datatype") != "FP32":
        raise invalid(f"the input datatype must be FP32 (pixels) or BYTES (base64 image files), got {tensor.get('datatype')!r}")
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
    return InferRequest(check_items(data.reshape(shape), spec), request_id, wanted)


def _image_tensor(tensor: dict[str, Any], spec: InputSpec) -> ImageFiles:
    """A v2 BYTES tensor of shape [n] (or [n, 1]): n base64 strings, each an image file."""
    shape, data = tensor.get("shape"), tensor.get("data")
    if isinstance(data, list) and all(isinstance(d, list) and len(d) == 1 for d in data):
        data = [d[0] for d in data]  # nested [[...], ...] as some clients write [n, 1]
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise invalid("a BYTES input's data must be a list of base64 strings, one image file each")
    if shape not in ([len(data)], [len(data), 1]):
        raise invalid(f"a BYTES input's shape must be [n] with n = {len(data)} files in its data, got {shape!r}")
    files = []
    for i, text in enumerate(data):
        try:
            files.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise invalid(f"file {i + 1} of the BYTES input is not valid base64") from None
    return check_count(ImageFiles(tuple(files), tuple(f"file {i + 1}" for i in range(len(files)))), spec)


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
