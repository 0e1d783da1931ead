"""edgeguard.client against a real server: files and arrays in, exact answers, typed errors, retries."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from edgeguard.client import Client, KeyRefused, Prediction, RateLimited, Refused, Unreachable
from edgeguard.runtime import DeployedModel


@pytest.fixture(scope="module")
def local(export: Path) -> DeployedModel:
    return DeployedModel.load(export)


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 30, 3), dtype=np.uint8), "RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def test_files_and_arrays_are_answered_as_the_local_model(serve, keys, local, tmp_path):
    url = serve()
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg(0))
    x = np.stack([local.image_spec.load(path), local.image_spec.load(jpeg(1))])
    expected = local.predict(x)
    with Client(url, keys.add("alice")) as client:
        assert client.metadata()["classes"] == local.manifest.classes and client.model == local.manifest.name  # found via GET /v2
        one = client.predict(path)
        assert one.outputs["probabilities"].tolist() == expected[:1].tolist()
        assert one.labels == [local.manifest.classes[expected[0].argmax()]]
        assert client.predict([path, jpeg(1)]).outputs["probabilities"].tolist() == expected.tolist()  # one batch
        assert client.predict(x).outputs["probabilities"].tolist() == expected.tolist()  # pixels, as JSON
        assert client.predict(x[0]).outputs["probabilities"].tolist() == expected[:1].tolist()
        assert client.infer(x).probabilities().tolist() == expected.tolist()
        assert client.answered == 1 + 2 + 2 + 1 + 2
    assert keys.used("alice") == 8


def test_top_reads_every_output_form():
    classes = ["a", "b", "c"]
    p = Prediction({"probabilities": np.array([[0.2, 0.5, 0.3]])})
    assert p.top(classes, 2) == [[("b", 0.5), ("c", 0.3)]]
    assert Prediction({"topk_indices": np.array([[2, 0]]), "topk_probabilities": np.array([[0.6, 0.3]])}).top(classes, 5) == [[("c", 0.6), ("a", 0.3)]]
    assert Prediction({"label": np.array([1, 0])}).top(classes, 3) == [[("b", None)], [("a", None)]]


def test_refusals_are_typed_and_carry_the_servers_sentence(serve, keys, local):
    url = serve()
    with pytest.raises(KeyRefused) as refused:
        Client(url, "eg_wrong").predict(jpeg(0))
    assert refused.value.status == 401 and refused.value.server_message.startswith("unknown API key")
    client = Client(url, keys.add("bob", budget=1))
    with pytest.raises(Refused) as bad:
        client.predict(b"not a picture")
    assert bad.value.status == 400 and "not an image" in bad.value.server_message and "refused a request of 1 inputs with 400" in str(bad.value)
    client.predict(jpeg(0))
    with pytest.raises(KeyRefused, match="refused to answer more queries: API key 'bob' has used all 1 queries.*answered 1 queries"):
        client.predict(jpeg(1))
    with pytest.raises(Unreachable, match="cannot reach edgeguard serve at http://127.0.0.1:9"):
        Client("http://127.0.0.1:9", "eg_x").predict(jpeg(0))


def test_429_is_waited_out_after_retry_after(serve, keys):
    url = serve()
    client = Client(url, keys.add("slow", rate=1, burst=1))
    client.predict(jpeg(0))
    start = time.monotonic()
    client.predict(jpeg(1))  # the bucket is empty: 429, Retry-After 1, then answered
    assert time.monotonic() - start >= 1.0 and client.retries == 1 and client.answered == 2


def test_503_is_retried_then_given_up_with_the_servers_sentence():
    replies = iter([503, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(replies)
        if status == 503:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "starting up"})
        return httpx.Response(200, json={"label": [3], "labels": ["3"]})

    client = Client("http://edge", "eg_k", transport=httpx.MockTransport(handler))
    assert client.predict(b"x").labels == ["3"] and client.retries == 2
    down = Client("http://edge", "eg_k", max_retries=2, transport=httpx.MockTransport(lambda r: httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "down"})))
    with pytest.raises(RateLimited, match="is still unavailable after 2 retries.*down") as gave_up:
        down.predict(b"x")
    assert gave_up.value.status == 503
