"""A running `edgeguard serve` as a thief's victim: the `Victim` interface over HTTP.

    victim = HttpVictim("http://127.0.0.1:8000", key, model_name="digits-small-cnn-qat-x86-s0")
    probs = victim.query(x)   # (n, C, H, W) float32 in [0, 1] -> (n, classes) float64
    victim.queries            # inputs the server answered (and charged to the key) so far

With `model_name`, the client reads the model's v2 metadata first (free of charge: it checks the key
and learns the classes, the batch limit and the output form) and sends v2 infer requests; without
it, `/predict`. Either way the answers are the server's float64s exactly (it writes floats in
round-trip form) and inputs travel as the exact float32 values, so an answer equals the local
`DeployedModel` + the same defense stack bit for bit.

A deployment that answers `--output topk` or `label` reveals less; its answers become probability
rows the way a thief would read them: the top-k probabilities in place and zeros elsewhere, or the
one-hot row of the label.

Device-side code: numpy and httpx, never torch.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import httpx
import numpy as np

from edgeguard.errors import EdgeguardError
from edgeguard.runtime import DeployedModel

DEFAULT_BATCH = 64  # the server's default --max-batch


class HttpVictim:
    """Queries `edgeguard serve` in batches of at most `batch` inputs; counts every answered input.

    - 429 (rate limit): sleeps the server's Retry-After and sends the request again, at most
      `max_retries` times and `max_wait` seconds per request; then an `EdgeguardError`.
    - 401 / 403 (unknown or revoked key, budget used up) and every other refusal: an
      `EdgeguardError` that quotes the server and says how many inputs it had answered.
    A query split into several requests may fail part-way: `queries` then counts exactly the inputs
    answered before the refusal (what the server charged), and their answers are not returned.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        model_name: str | None = None,
        batch: int = DEFAULT_BATCH,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_wait: float = 60.0,
    ):
        if batch < 1:
            raise EdgeguardError(f"batch must be >= 1 (inputs per request), got {batch}")
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.batch = batch
        self.max_retries, self.max_wait = max_retries, max_wait
        self.queries = 0
        self.retries = 0  # 429s waited out, over the client's life
        self.client = httpx.Client(base_url=self.url, headers={"X-API-Key": api_key}, timeout=timeout)
        self.metadata: dict[str, Any] | None = None
        self.classes: list[str] | None = None
        if model_name is not None:
            self.metadata = self._send("GET", f"/v2/models/{model_name}", 0).json()
            self.classes = list(self.metadata["classes"])
            self.batch = min(batch, int(self.metadata["max_batch"]))

    def __enter__(self) -> "HttpVictim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def query(self, x: np.ndarray) -> np.ndarray:
        """(n, C, H, W) in [0, 1] -> (n, classes) float64, one request per `batch` inputs."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise EdgeguardError(f"queries are a batch of images of shape (n, C, H, W), got shape {x.shape}")
        if len(x) == 0:
            return np.zeros((0, len(self.classes or ())))
        return np.concatenate([self._ask(x[i : i + self.batch]) for i in range(0, len(x), self.batch)])

    def _ask(self, x: np.ndarray) -> np.ndarray:
        if self.model_name is None:
            response = self._send("POST", "/predict", len(x), {"inputs": x.tolist()})
        else:
            tensor = {"name": self.metadata["inputs"][0]["name"], "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
            response = self._send("POST", f"/v2/models/{self.model_name}/infer", len(x), {"inputs": [tensor]})
        self.queries += len(x)  # a 200 means the server charged every item, whatever follows
        reply = response.json()
        if self.model_name is None:
            tensors = {name: np.asarray(value) for name, value in reply.items() if name != "labels"}
        else:
            tensors = {out["name"]: np.reshape(out["data"], out["shape"]) for out in reply["outputs"]}
        probs = self._as_probabilities(tensors)
        if len(probs) != len(x):
            raise EdgeguardError(f"the server at {self.url} answered {len(probs)} rows for {len(x)} inputs")
        return probs

    def _as_probabilities(self, tensors: dict[str, np.ndarray]) -> np.ndarray:
        """Whatever the deployment's output form reveals, as (n, classes) probability rows."""
        if "probabilities" in tensors:
            return np.asarray(tensors["probabilities"], dtype=np.float64)
        if self.classes is None:
            raise EdgeguardError(
                f"the server at {self.url} answers {' and '.join(sorted(tensors))}, not probabilities; "
                f"give the model name so the client can read the number of classes from its metadata"
            )
        if "label" in tensors:
            return np.eye(len(self.classes))[np.asarray(tensors["label"], dtype=np.int64)]
        index = np.asarray(tensors["topk_indices"], dtype=np.int64)
        out = np.zeros((len(index), len(self.classes)))
        np.put_along_axis(out, index, np.asarray(tensors["topk_probabilities"], dtype=np.float64), axis=1)
        return out

    def _send(self, method: str, path: str, n: int, body: Any = None) -> httpx.Response:
        """One request, with 429s waited out; any other refusal becomes a sentence."""
        waited = 0.0
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.request(method, path, json=body)
            except httpx.TransportError as e:
                raise EdgeguardError(f"cannot reach edgeguard serve at {self.url} ({e}); is it running, and is the URL right?") from e
            if response.status_code != 429:
                break
            wait = retry_after(response)
            if attempt == self.max_retries or waited + wait > self.max_wait:
                raise EdgeguardError(
                    f"the server at {self.url} still rate-limits this key after {attempt} retries ({waited:g} s waited; "
                    f"it asks for {wait:g} s more): {message(response)}; send smaller batches, or raise max_wait / max_retries"
                )
            time.sleep(wait)
            waited += wait
            self.retries += 1
        if response.status_code == 200:
            return response
        answered = f"it had answered {self.queries} queries from this client"
        if response.status_code == 401:
            raise EdgeguardError(f"the server at {self.url} does not accept this API key: {message(response)} ({answered})")
        if response.status_code == 403:
            raise EdgeguardError(f"the server at {self.url} refused to answer more queries: {message(response)} ({answered})")
        what = f"a request of {n} inputs" if n else f"{method} {path}"
        raise EdgeguardError(f"the server at {self.url} refused {what} with {response.status_code}: {message(response)} ({answered})")


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


class RemoteServedVictim:
    """A running server as `edgeguard.evaluate.cells.rob` sees a victim.

    Answers come from the server (through `client`, which counts them); the bare probabilities that
    the perturbation measure compares them with come from the local export the server serves. The
    server answers a repeated query the same way (the defenses' randomness is a function of the
    query), so a batch asked again is answered from memory at no cost to the key's budget: `rob`
    asks for the test split twice.
    """

    def __init__(self, client: HttpVictim, model: DeployedModel):
        if client.classes is not None and client.classes != list(model.manifest.classes):
            raise EdgeguardError(
                f"the server at {client.url} serves classes {client.classes}, the export '{model.manifest.name}' has "
                f"{list(model.manifest.classes)}: point --url at the server of this export"
            )
        self.client, self.model = client, model
        self.memo: tuple[bytes, np.ndarray] | None = None

    def bare(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        key = hashlib.blake2b(x.tobytes(), digest_size=16).digest() + repr(x.shape).encode()
        if self.memo is None or self.memo[0] != key:
            self.memo = (key, self.client.query(x))
        return self.memo[1]
