"""A small client of `edgeguard serve`: image files or pixel arrays in, the deployment's answers out.

    from edgeguard.client import Client
    with Client("http://127.0.0.1:8000", key) as client:
        client.predict("photo.jpg").labels          # ['8']; also file bytes, or a list of them (one batch)
        client.predict(x)                           # (C, H, W) or (n, C, H, W) floats in [0, 1]
        client.metadata()["classes"]                # input shape, classes, output form: free of charge

Files travel as they are, one multipart `file` part each: the server decodes them with the model's
own preprocessing (runtime.preprocess.ImageSpec), so a client needs neither Pillow nor the model's
input size. Arrays travel as JSON, each float32 exactly. 429 and 503 are retried after the server's
Retry-After (bounded by `max_retries` and `max_wait`); every other refusal raises a `Refused` that
carries the server's sentence. `answered` counts the items the server answered, which is what it
charged the key. `edgeguard predict URL` and `edgeguard attack --url` (attacks.http) use it.

Device side: numpy and httpx, never torch.
"""

from __future__ import annotations

import math
import mimetypes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import httpx
import numpy as np

from edgeguard.errors import EdgeguardError

ImageFile = Union[str, Path, bytes]  # a path, or the bytes of an image file


class Refused(EdgeguardError):
    """The server refused a request: its HTTP `status` and its own sentence (`server_message`)."""

    def __init__(self, message: str, status: int, server_message: str):
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class KeyRefused(Refused):
    """401 / 403: an unknown or revoked key, a budget used up, a blocked key; nothing more will be answered."""


class RateLimited(Refused):
    """429 / 503 still, after the retries and the waiting the client was allowed."""


class Unreachable(EdgeguardError):
    """No HTTP answer at all: the server is down, or the URL is wrong."""


@dataclass(frozen=True)
class Prediction:
    """One request's answer: the deployment's output tensors, and for /predict the top class names."""

    outputs: dict[str, np.ndarray]  # probabilities | topk_indices + topk_probabilities | label (serve --output)
    labels: list[str] | None = None  # v2 infer answers carry none

    def probabilities(self, classes: int | None = None) -> np.ndarray:
        """(n, classes) rows as a thief reads what the deployment reveals: the top-k probabilities in
        place and zeros elsewhere, or the one-hot row of the label. `classes` is needed for those two."""
        if "probabilities" in self.outputs:
            return np.asarray(self.outputs["probabilities"], dtype=np.float64)
        if classes is None:
            raise EdgeguardError(
                f"the server answers {' and '.join(sorted(self.outputs))}, not probabilities; "
                "give the model name so the client can read the number of classes from its metadata"
            )
        if "label" in self.outputs:
            return np.eye(classes)[np.asarray(self.outputs["label"], dtype=np.int64)]
        index = np.asarray(self.outputs["topk_indices"], dtype=np.int64)
        out = np.zeros((len(index), classes))
        np.put_along_axis(out, index, np.asarray(self.outputs["topk_probabilities"], dtype=np.float64), axis=1)
        return out

    def top(self, classes: Sequence[str], k: int) -> list[list[tuple[str, float | None]]]:
        """Per image, up to k (class name, probability) best first; a label-only answer has one, without probability."""
        if "label" in self.outputs:
            return [[(classes[int(i)], None)] for i in self.outputs["label"]]
        if "topk_indices" in self.outputs:
            pairs = zip(self.outputs["topk_indices"], self.outputs["topk_probabilities"])
            return [[(classes[int(i)], float(p)) for i, p in zip(idx[:k], prob[:k])] for idx, prob in pairs]
        rows = self.probabilities()
        best = np.argsort(-rows, axis=1, kind="stable")[:, :k]  # ties keep index order, as the server's argmax
        return [[(classes[int(i)], float(row[i])) for i in idx] for row, idx in zip(rows, best)]


class Client:
    """One keep-alive connection to `edgeguard serve` with an API key; `model`: the served model's name
    (read from the server's `GET /v2` when left out)."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        model: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url.rstrip("/")
        self.model = model
        self.max_retries, self.max_wait = max_retries, max_wait
        self.answered = 0  # items the server answered, and charged to the key, over this client's life
        self.retries = 0  # 429s and 503s waited out
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self._metadata: dict[str, Any] | None = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def metadata(self) -> dict[str, Any]:
        """The model's v2 metadata (input shape, classes, output form, max_batch); read once, free of charge."""
        if self._metadata is None:
            if self.model is None:
                self.model = str(self._send("GET", "/v2", 0).json()["models"][0])
            self._metadata = self._send("GET", f"/v2/models/{self.model}", 0).json()
        return self._metadata

    def predict(self, images: ImageFile | Sequence[ImageFile] | np.ndarray) -> Prediction:
        """One /predict request: a file (path or bytes) or a list of files as one batch, sent as multipart;
        or an array (C, H, W) / (n, C, H, W) of pixels in [0, 1], sent as JSON."""
        if isinstance(images, np.ndarray):
            x = np.asarray(images, dtype=np.float32)
            n = 1 if x.ndim == 3 else len(x)
            response = self._send("POST", "/predict", n, json={"inputs": x.tolist()})
        else:
            files = [images] if isinstance(images, (str, Path, bytes)) else list(images)
            n = len(files)
            response = self._send("POST", "/predict", n, files=[("file", file_part(f, i)) for i, f in enumerate(files)])
        reply = response.json()
        labels = reply.pop("labels")
        return self._count(Prediction({name: np.asarray(value) for name, value in reply.items()}, labels), n)

    def infer(self, x: np.ndarray) -> Prediction:
        """One Open Inference Protocol (v2) request of an (n, C, H, W) array of pixels in [0, 1]."""
        x = np.asarray(x, dtype=np.float32)
        tensor = {"name": self.metadata()["inputs"][0]["name"], "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        reply = self._send("POST", f"/v2/models/{self.model}/infer", len(x), json={"inputs": [tensor]}).json()
        return self._count(Prediction({out["name"]: np.reshape(out["data"], out["shape"]) for out in reply["outputs"]}), len(x))

    def _count(self, answer: Prediction, n: int) -> Prediction:
        self.answered += n  # a 200 means the server charged every item, whatever follows
        rows = len(next(iter(answer.outputs.values())))
        if rows != n:
            raise EdgeguardError(f"the server at {self.url} answered {rows} rows for {n} inputs")
        return answer

    def _send(self, method: str, path: str, n: int, **body: Any) -> httpx.Response:
        """One request, with 429s and 503s waited out; any other refusal becomes a sentence."""
        waited = 0.0
        for attempt in range(self.max_retries + 1):
            try:
                response = self.http.request(method, path, **body)
            except httpx.TransportError as e:
                raise Unreachable(f"cannot reach edgeguard serve at {self.url} ({e}); is it running, and is the URL right?") from e
            if response.status_code not in (429, 503):
                break
            wait = retry_after(response)
            if attempt == self.max_retries or waited + wait > self.max_wait:
                still = "still rate-limits this key" if response.status_code == 429 else "is still unavailable"
                raise RateLimited(
                    f"the server at {self.url} {still} after {attempt} retries ({waited:g} s waited; it asks for {wait:g} s more): "
                    f"{message(response)}; send smaller batches, or raise max_wait / max_retries",
                    response.status_code, message(response),
                )
            time.sleep(wait)
            waited += wait
            self.retries += 1
        status = response.status_code
        if status == 200:
            return response
        said, answered = message(response), f"it had answered {self.answered} queries from this client"
        if status == 401:
            raise KeyRefused(f"the server at {self.url} does not accept this API key: {said} ({answered})", status, said)
        if status == 403:
            raise KeyRefused(f"the server at {self.url} refused to answer more queries: {said} ({answered})", status, said)
        what = f"a request of {n} inputs" if n else f"{method} {path}"
        raise Refused(f"the server at {self.url} refused {what} with {status}: {said} ({answered})", status, said)


def file_part(image: ImageFile, index: int) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of one multipart part; the server tells formats apart by their bytes."""
    if isinstance(image, bytes):
        return f"image-{index + 1}", image, "application/octet-stream"
    path = Path(image)
    return path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def message(response: httpx.Response) -> str:
    """The server's error sentence (every edgeguard refusal is {"error": ...}), or the body's start."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def retry_after(response: httpx.Response) -> float:
    """Retry-After in seconds (edgeguard sends whole seconds); 1 s when missing or unreadable."""
    try:
        wait = float(response.headers.get("retry-after", "1"))
    except ValueError:
        return 1.0
    return wait if math.isfinite(wait) and wait >= 0 else 1.0
