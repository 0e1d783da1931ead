"""A running `edgeguard serve` as a thief's victim: the `Victim` interface over HTTP (edgeguard.client).

    victim = HttpVictim("http://127.0.0.1:8000", key, model_name="digits-small-cnn-qat-x86-s0")
    probs = victim.query(x)   # (n, C, H, W) float32 in [0, 1] -> (n, classes) float64
    victim.queries            # inputs the server answered (and charged to the key) so far

With `model_name`, the client reads the model's v2 metadata first (free of charge: it checks the key
and learns the classes, the batch limit and the output form) and sends v2 infer requests; without
it, `/predict`. Either way the answers are the server's float64s exactly (it writes floats in
round-trip form) and inputs travel as the exact float32 values, so an answer equals the local
`DeployedModel` + the same defense stack bit for bit.

A deployment that answers `--output topk` or `label` reveals less; its answers become probability
rows the way a thief would read them (`client.Prediction.probabilities`).

Device-side code: numpy and httpx, never torch.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgeguard.client import Client
from edgeguard.errors import EdgeguardError
from edgeguard.runtime import DeployedModel

DEFAULT_BATCH = 64  # the server's default --max-batch


class HttpVictim(Client):
    """A `Client` that answers the `Victim` protocol: queries `edgeguard serve` in batches of at most
    `batch` inputs and counts every answered input.

    - 429 (rate limit): the client sleeps the server's Retry-After and sends the request again, at
      most `max_retries` times and `max_wait` seconds per request; then an `EdgeguardError`.
    - 401 / 403 (unknown or revoked key, budget used up) and every other refusal: an
      `EdgeguardError` that quotes the server and says how many inputs it had answered.
    A query split into several requests may fail part-way: `queries` then counts exactly the inputs
    answered before the refusal (what the server charged), and their answers are not returned.
    """

    def __init__(self, url: str, api_key: str, model_name: str | None = None, batch: int = DEFAULT_BATCH, **client_options: Any):
        """`client_options`: `edgeguard.client.Client`'s (timeout, max_retries, max_wait)."""
        if batch < 1:
            raise EdgeguardError(f"batch must be >= 1 (inputs per request), got {batch}")
        super().__init__(url, api_key, model_name, **client_options)
        self.model_name = model_name
        self.batch = batch
        self.classes: list[str] | None = None
        if model_name is not None:
            metadata = self.metadata()
            self.classes = list(metadata["classes"])
            self.batch = min(batch, int(metadata["max_batch"]))

    @property
    def queries(self) -> int:
        return self.answered

    def query(self, x: np.ndarray) -> np.ndarray:
        """(n, C, H, W) in [0, 1] -> (n, classes) float64, one request per `batch` inputs."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise EdgeguardError(f"queries are a batch of images of shape (n, C, H, W), got shape {x.shape}")
        if len(x) == 0:
            return np.zeros((0, len(self.classes or ())))
        return np.concatenate([self._ask(x[i : i + self.batch]) for i in range(0, len(x), self.batch)])

    def _ask(self, x: np.ndarray) -> np.ndarray:
        answer = self.predict(x) if self.model_name is None else self.infer(x)
        return answer.probabilities(None if self.classes is None else len(self.classes))


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
