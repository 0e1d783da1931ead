"""Request parsing: every bad body is a 4xx ClientError with a sentence; good bodies become exact batches."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.serve.protocol import ClientError, InputSpec, parse_infer, parse_predict, v2_tensor

SPEC = InputSpec((1, 4, 4), max_batch=3)
OUTPUTS = ("probabilities",)


def infer_body(**tensor) -> bytes:
    base = {"name": "input", "shape": [1, 1, 4, 4], "datatype": "FP32", "data": [0.5] * 16}
    return orjson.dumps({"inputs": [base | tensor]})


def rejected(fn, *args) -> ClientError:
    with pytest.raises(ClientError) as e:
        fn(*args)
    assert 400 <= e.value.status < 500 and e.value.message
    return e.value


def test_predict_accepts_one_image_or_a_batch_exactly():
    x = np.random.default_rng(0).random((2, 1, 4, 4), dtype=np.float32)
    batch = parse_predict(orjson.dumps({"inputs": x.tolist()}), SPEC)
    assert batch.dtype == np.float32 and np.array_equal(batch, x)
    assert np.array_equal(parse_predict(orjson.dumps({"inputs": x[0].tolist()}), SPEC), x[:1])
    ints = parse_predict(orjson.dumps({"inputs": np.ones((1, 4, 4), int).tolist()}), SPEC)
    assert ints.dtype == np.float32 and (ints == 1).all()


@pytest.mark.parametrize(
    "body, words",
    [
        (b'{"inputs": [1, 2', "valid JSON"),
        (b"[1, 2]", '{"inputs"'),
        (b'{"x": 1}', '{"inputs"'),
        (b'{"inputs": [[[NaN]]]}', "NaN"),
        (b'{"inputs": 1e999}', "valid JSON"),
        (json.dumps({"inputs": np.full((1, 4, 3), 0.5).tolist()}).encode(), "shape (1, 4, 3)"),
        (json.dumps({"inputs": np.full((1, 1, 4, 4), "a").tolist()}).encode(), "non-numeric"),
        (json.dumps({"inputs": np.full((1, 1, 4, 4), True).tolist()}).encode(), "true/false"),
        (json.dumps({"inputs": [[[0.1] * 4] * 3 + [[0.1] * 3]]}).encode(), "uneven"),
        (json.dumps({"inputs": [[[None] * 4] * 4]}).encode(), "non-numeric"),
        (json.dumps({"inputs": np.full((1, 1, 4, 4), 2.0).tolist()}).encode(), "[0, 1]"),
        (json.dumps({"inputs": np.full((1, 1, 4, 4), -0.5).tolist()}).encode(), "[0, 1]"),
        (json.dumps({"inputs": np.full((1, 1, 4, 4), 1e300).tolist()}).encode(), "[0, 1]"),
        (json.dumps({"inputs": np.zeros((4, 1, 4, 4)).tolist()}).encode(), "at most 3 items"),
        (json.dumps({"inputs": np.zeros((0, 1, 4, 4)).tolist()}).encode(), "shape"),
        (b"[" * 100_000 + b"]" * 100_000, "valid JSON"),  # nesting deeper than any parser's stack
        (b"\xff\xfe", "valid JSON"),
    ],
)
def test_predict_rejections_say_what_was_expected(body, words):
    error = rejected(parse_predict, body, SPEC)
    assert error.status == 400 and words in error.message


@pytest.mark.parametrize(
    "body, words",
    [
        (orjson.dumps({"inputs": []}), "exactly one input tensor"),
        (orjson.dumps({"inputs": [1]}), "is an object"),
        (infer_body(name="pixels"), "named 'input'"),
        (infer_body(datatype="FP16"), "FP32"),
        (infer_body(shape=[1, 1, 4]), "shape must be"),
        (infer_body(shape=[-1, 1, 4, 4]), "shape must be"),
        (infer_body(shape=["1", 1, 4, 4]), "shape must be"),
        (infer_body(shape=[9, 1, 4, 4]), "at most 3 items"),
        (infer_body(shape=[0, 1, 4, 4], data=[]), "no items"),
        (infer_body(data=[0.5] * 15), "holds 15 numbers"),
        (infer_body(data=["a"] * 16), "non-numeric"),
        (infer_body(data=[0.5] * 15 + [7]), "[0, 1]"),
        (orjson.dumps({"id": 3, "inputs": [orjson.loads(infer_body())["inputs"][0]]}), "id must be a string"),
        (orjson.dumps({"outputs": [{"name": "logits"}], "inputs": orjson.loads(infer_body())["inputs"]}), "probabilities"),
    ],
)
def test_infer_rejections_say_what_was_expected(body, words):
    error = rejected(parse_infer, body, SPEC, OUTPUTS)
    assert error.status == 400 and words in error.message


def test_infer_reads_flat_or_nested_data_and_the_id():
    x = np.random.default_rng(1).random((2, 1, 4, 4), dtype=np.float32)
    for data in (x.ravel().tolist(), x.tolist()):
        body = orjson.dumps({"id": "q1", "outputs": [{"name": "probabilities"}], "inputs": [orjson.loads(infer_body(shape=[2, 1, 4, 4], data=data))["inputs"][0]]})
        request = parse_infer(body, SPEC, OUTPUTS)
        assert np.array_equal(request.x, x) and request.id == "q1" and request.outputs == ("probabilities",)


def test_v2_tensors_round_trip_float64_exactly():
    p = np.random.default_rng(2).dirichlet(np.ones(10), size=3)
    tensor = orjson.loads(orjson.dumps(v2_tensor("probabilities", p)))
    assert tensor["datatype"] == "FP64" and tensor["shape"] == [3, 10]
    assert np.array_equal(np.reshape(tensor["data"], tensor["shape"]), p)
    assert v2_tensor("label", p.argmax(1))["datatype"] == "INT64"


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.sampled_from(["inputs", "name", "shape", "datatype", "data", "id", "outputs"]), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_is_parsed_or_refused_never_crashes(value):
    body = json.dumps(value).encode()
    for parse in (lambda: parse_predict(body, SPEC), lambda: parse_infer(body, SPEC, OUTPUTS)):
        try:
            parse()
        except ClientError as e:
            assert 400 <= e.status < 500
