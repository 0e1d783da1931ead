"""A real uvicorn server on loopback: routes, answers, errors, keys, budgets, rate limits, metrics."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest

from edgeguard.defenses import parse_stack
from edgeguard.runtime import DeployedModel

from .conftest import STACK


@pytest.fixture(scope="module")
def local(export: Path) -> DeployedModel:
    return DeployedModel.load(export)


def images(model: DeployedModel, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *model.input_shape), dtype=np.float32)


def predict(url: str, key: str | None, x: np.ndarray, **kw) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(f"{url}/predict", json={"inputs": x.tolist()}, headers=headers, **kw)


def infer_body(x: np.ndarray, **extra) -> dict:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}], **extra}


def test_health_routes_need_no_key(serve, keys, local):
    url = serve()
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2/models/{local.manifest.name}/ready").json()["ready"] is True
    r = httpx.get(f"{url}/v2/models/nope/ready")
    assert r.status_code == 404 and "serves" in r.json()["error"]


def test_metadata_describes_the_model_never_the_defense(serve, keys, local):
    key = keys.add("alice")
    url = serve(defense=STACK)
    name = local.manifest.name
    assert httpx.get(f"{url}/v2/models/{name}").status_code == 401
    r = httpx.get(f"{url}/v2/models/{name}", headers={"X-API-Key": key})
    meta = r.json()
    assert meta["name"] == name and meta["platform"] == "onnxruntime_onnx" and meta["int8"] is True
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, *local.input_shape]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP64", "shape": [-1, local.num_classes]}]
    assert meta["classes"] == local.manifest.classes and meta["output"] == "probabilities"
    for secret in ("reverse_sigmoid", "noise", "test-secret", "beta", "round"):
        assert secret not in r.text
    assert httpx.get(f"{url}/v2/models/other", headers={"X-API-Key": key}).status_code == 404
    assert keys.used("alice") == 0  # metadata costs no budget


def test_served_answers_equal_the_local_defended_model(serve, keys, local):
    key = keys.add("alice")
    url = serve(defense=STACK)
    stack = parse_stack(STACK)
    x = images(local, 5)
    expected = stack(local.predict(x), x)
    labels = [local.manifest.classes[i] for i in expected.argmax(axis=1)]

    r = predict(url, key, x)
    assert r.status_code == 200 and r.json() == {"probabilities": expected.tolist(), "labels": labels}
    r = predict(url, key, x[0])  # one (C, H, W) image
    assert r.json()["probabilities"] == expected[:1].tolist()
    r = httpx.post(f"{url}/v2/models/{local.manifest.name}/infer", json=infer_body(x, id="q-7"), headers={"Authorization": f"Bearer {key}"})
    body = r.json()
    assert r.status_code == 200 and body["id"] == "q-7" and body["model_name"] == local.manifest.name
    (out,) = body["outputs"]
    assert out["name"] == "probabilities" and out["datatype"] == "FP64" and out["shape"] == [5, local.num_classes]
    assert np.array_equal(np.reshape(out["data"], out["shape"]), expected)
    assert keys.used("alice") == 5 + 1 + 5


@pytest.mark.parametrize("output", ["topk", "label"])
def test_output_modes_reveal_only_what_the_operator_chose(serve, keys, local, output):
    key = keys.add("alice")
    url = serve(defense="reverse_sigmoid(beta=0.7, gamma=0.4)", output=output, top_k=2)
    x = images(local, 4, seed=1)
    served = parse_stack("reverse_sigmoid(beta=0.7, gamma=0.4)")(local.predict(x), x)
    top = np.argsort(-served, axis=1, kind="stable")[:, :2]
    labels = [local.manifest.classes[i] for i in served.argmax(axis=1)]
    body = predict(url, key, x).json()
    if output == "topk":
        assert body == {
            "topk_indices": top.tolist(),
            "topk_probabilities": np.take_along_axis(served, top, axis=1).tolist(),
            "labels": labels,
        }
    else:
        assert body == {"label": served.argmax(axis=1).tolist(), "labels": labels}
    meta = httpx.get(f"{url}/v2/models/{local.manifest.name}", headers={"X-API-Key": key}).json()
    names = [o["name"] for o in meta["outputs"]]
    r = httpx.post(f"{url}/v2/models/{local.manifest.name}/infer", json=infer_body(x), headers={"X-API-Key": key})
    assert names == (["topk_indices", "topk_probabilities"] if output == "topk" else ["label"])
    assert [o["name"] for o in r.json()["outputs"]] == names and meta["output"] == output


def test_bad_input_gets_a_4xx_sentence_costs_nothing_and_the_server_keeps_serving(serve, keys, local):
    key = keys.add("alice", budget=3)
    url = serve(max_batch=4, max_body_bytes=200_000)
    name, shape = local.manifest.name, local.input_shape
    h = {"X-API-Key": key}
    good = images(local, 1)
    big = b'{"inputs": [' + b"0.5, " * 60_000 + b"0.5]}"

    def chunks():
        for _ in range(100):
            yield b" " * 4096  # 400 KB of whitespace, streamed without a Content-Length

    cases = [
        ("POST", "/predict", {"content": b'{"inputs": [[[0.1'}, 400, "valid JSON"),
        ("POST", "/predict", {"json": {"inputs": np.zeros((1, 2, 2)).tolist()}}, 400, "shape"),
        ("POST", "/predict", {"json": {"inputs": np.full(shape, "x").tolist()}}, 400, "non-numeric"),
        ("POST", "/predict", {"content": b'{"inputs": [[[NaN]]]}'}, 400, "NaN"),
        ("POST", "/predict", {"json": {"inputs": (good * 3).tolist()}}, 400, "[0, 1]"),
        ("POST", "/predict", {"json": {"inputs": np.zeros((5, *shape)).tolist()}}, 400, "at most 4 items"),
        ("POST", "/predict", {"content": big}, 413, "at most 200000 bytes"),
        ("POST", "/predict", {"content": chunks()}, 413, "at most 200000 bytes"),
        ("POST", f"/v2/models/{name}/infer", {"json": {"inputs": [{"name": "input"}]}}, 400, "FP32"),
        ("POST", "/v2/models/nope/infer", {"json": infer_body(good)}, 404, "no model named 'nope'"),
        ("GET", "/predict", {}, 405, "not allowed"),
        ("GET", "/nothing/here", {}, 404, "no such route"),
    ]
    for method, path, kwargs, status, words in cases:
        r = httpx.request(method, f"{url}{path}", headers=h, **kwargs)
        assert r.status_code == status, (path, words, r.text)
        assert r.headers["content-type"] == "application/json" and words in r.json()["error"], r.text
    assert keys.used("alice") == 0
    assert predict(url, key, good).status_code == 200  # an honest client is unaffected


def test_keys_401_403_and_revocation_on_a_running_server(serve, keys, local):
    key = keys.add("alice")
    url = serve()
    x = images(local, 1)
    r = predict(url, None, x)
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert predict(url, "eg_wrong", x).status_code == 401
    r = httpx.post(f"{url}/predict", json={"inputs": x.tolist()}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    keys.store.revoke("alice")  # as `edgeguard keys revoke` would, from another connection
    r = predict(url, key, x)
    assert r.status_code == 403 and "revoked" in r.json()["error"]


def test_budget_is_exhausted_at_exactly_n_items(serve, keys, local):
    key = keys.add("alice", budget=5)
    url = serve()
    x = images(local, 3)
    assert predict(url, key, x[:2]).status_code == 200
    assert predict(url, key, x[:2]).status_code == 200
    r = predict(url, key, x[:2])  # 1 left: a batch of 2 is refused whole, and charged nothing
    assert r.status_code == 403 and "1 of its 5 queries left" in r.json()["error"]
    assert predict(url, key, x[:1]).status_code == 200
    r = predict(url, key, x[:1])
    assert r.status_code == 403 and "used all 5 queries" in r.json()["error"]
    assert keys.used("alice") == 5


def test_daily_budget_resets_at_utc_midnight(serve, keys, local):
    key = keys.add("alice", daily=2)
    now = [datetime(2026, 3, 1, 23, 59, tzinfo=timezone.utc)]
    url = serve(clock=lambda: now[0])
    x = images(local, 2)
    assert predict(url, key, x).status_code == 200
    r = predict(url, key, x[:1])
    assert r.status_code == 403 and "today" in r.json()["error"]
    now[0] += timedelta(minutes=2)
    assert predict(url, key, x).status_code == 200


def test_rate_limit_answers_429_with_retry_after_and_charges_nothing(serve, keys, local):
    key = keys.add("alice", rate=0.5, burst=2)
    url = serve()
    x = images(local, 1)
    assert [predict(url, key, x).status_code for _ in range(2)] == [200, 200]
    r = predict(url, key, x)
    # 2 s for the missing token; less when the machine was slow enough for part of it to refill
    assert r.status_code == 429 and r.headers["retry-after"] in ("1", "2") and "0.5 items per second" in r.json()["error"]
    assert keys.used("alice") == 2

    key = keys.add("bob", budget=1, rate=0.5, burst=2)
    assert predict(url, key, images(local, 2)).status_code == 403  # over budget: takes no tokens either
    assert predict(url, key, x).status_code == 200


def test_32_concurrent_clients_with_batches_never_get_budget_plus_one(serve, keys, local):
    budget = 150
    key = keys.add("alice", budget=budget)
    url = serve()
    x = images(local, 8)
    answered, statuses = [], []

    def client(seed: int) -> None:
        rng, got = random.Random(seed), 0
        with httpx.Client(headers={"X-API-Key": key}, timeout=30) as http:
            while True:
                n = rng.choice([1, 2, 3, 5, 8])
                r = http.post(f"{url}/predict", json={"inputs": x[:n].tolist()})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    got += len(r.json()["labels"])
                elif n > 1:  # refused whole: fall back to single items until those are refused too
                    r = http.post(f"{url}/predict", json={"inputs": x[:1].tolist()})
                    statuses.append(r.status_code)
                    if r.status_code != 200:
                        break
                    got += 1
                else:
                    break
        answered.append(got)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 403}
    assert sum(answered) == budget == keys.used("alice")


def test_metrics_count_routes_statuses_rejections_and_key_usage(serve, keys, local):
    key = keys.add("alice", budget=10)
    keys.add("bob")
    url = serve()
    x = images(local, 2)
    predict(url, key, x)
    predict(url, None, x)
    httpx.post(f"{url}/predict", content=b"{", headers={"X-API-Key": key})
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = dict(line.rsplit(" ", 1) for line in r.text.splitlines() if not line.startswith("#"))
    assert samples['edgeguard_requests_total{route="/predict",status="200"}'] == "1"
    assert samples['edgeguard_requests_total{route="/predict",status="401"}'] == "1"
    assert samples['edgeguard_requests_total{route="/predict",status="400"}'] == "1"
    assert samples['edgeguard_rejected_total{reason="invalid"}'] == "1"
    assert samples['edgeguard_rejected_total{reason="unauthorized"}'] == "1"
    assert samples['edgeguard_request_duration_seconds_count{route="/predict"}'] == "3"
    assert samples['edgeguard_request_duration_seconds_bucket{route="/predict",le="+Inf"}'] == "3"
    assert samples["edgeguard_items_answered_total"] == "2"
    assert samples['edgeguard_key_items_used_total{key="alice"}'] == "2"
    assert samples['edgeguard_key_items_remaining{key="alice"}'] == "8"
    assert samples['edgeguard_key_items_used_total{key="bob"}'] == "0"
    assert 'edgeguard_key_items_remaining{key="bob"}' not in samples  # no budget, nothing remaining to show
