"""Load test of `edgeguard serve` on loopback: throughput, latency, server overhead, correctness.

    python benchmarks/load_test.py --export /tmp/srv_export/digits-small-cnn-qat-x86-s0
    python benchmarks/load_test.py --export ... --requests 5000 --clients 32 --out benchmarks/results/serve.json

For each deployment (no defense, then STACK), in one run:
1. start `edgeguard serve` in a subprocess on 127.0.0.1 (a free port, a fresh keys database, one
   onnxruntime thread);
2. latency: --latency-requests single-image /predict requests, one at a time on one keep-alive
   connection -> p50 / p99 of the round trip as the client sees it;
3. load: --requests requests from --clients concurrent keep-alive connections, a fixed mix of valid
   requests (/predict and v2 infer, 1 or 8 images) and invalid ones (each kind of bad input, no key,
   an unknown model, a too-large body) -> throughput, p50 / p99, counts by status;
4. check that every valid answer equals `DeployedModel` + the same stack run in this process (exact
   float64 equality: the server writes floats in round-trip form), that every invalid request got
   its expected 4xx, and that no answer was a 5xx; then stop the server.
Also measured in this process on the same single 28x28 input: the bare onnxruntime `session.run`
p50, and `DeployedModel.predict` + stack. Server overhead = p50(server, step 2) - p50(bare).

Then the defense overhead (issue 4's bar: a stack may add at most 5% to one served request): both
deployments served at once, --latency-requests single-image requests (and a twentieth as many of
64 images) sent to them in turn from one client, so that whatever else the machine does slows both
alike; the stack alone timed in this process at batch 1 and 64 as bench_defenses.py times it.
ratio = stack alone / p50 of the undefended server at that batch. Beside it, what the stack really
adds to a request, as medians over pairs of defended - undefended: over HTTP (noisy on a busy
machine), and inside the server without HTTP (`Service.predict` + JSON for the two deployments in
turn, in this process), where the stack runs with caches cold from the rest of the request.

Bounded: each phase stops after its request count or --max-seconds, whichever comes first. Only
127.0.0.1 is ever contacted (the server process and the client: edgeguard.bench.loopback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from edgeguard.bench.defenses import BATCHES, STACK
from edgeguard.bench.loopback import (
    Server,
    alternate,
    drive,
    http_request,
    infer_body,
    load_summary,
    paired_difference_us,
    percentiles_us,
    predict_body,
    run_async,
)
from edgeguard.bench.script import run_script
from edgeguard.bench.timing import installed_versions
from edgeguard.bench.timing import median_us as bench_median_us
from edgeguard.defenses import parse_stack
from edgeguard.errors import EdgeguardError
from edgeguard.runtime import DeployedModel
from edgeguard.serve.keys import KeyStore
from edgeguard.serve.protocol import dumps
from edgeguard.serve.service import ServeConfig, Service, default_max_body_bytes

BATCH = 8  # images per batched valid request
OVERHEAD_BAR = 0.05  # a defense stack may add at most 5% to one served request's latency
SERVING_PACKAGES = ("starlette", "uvicorn", "uvloop", "httptools", "orjson")  # versions recorded with the machine


@dataclass
class Case:
    """One prepared request: raw HTTP bytes, the status it must get, and for valid ones the answer."""

    kind: str
    raw: bytes
    status: int
    expected: np.ndarray | None = None  # defended probabilities (n, classes)
    weight: int = 1


def build_cases(model: DeployedModel, stack: Any, key: str, rng: np.random.Generator, max_batch: int, max_body: int) -> list[Case]:
    """The request mix: 8 valid kinds (weighted 3 each) and 10 invalid kinds (weight 1 each)."""
    shape, name = model.input_shape, model.manifest.name
    infer_path = f"/v2/models/{name}/infer"

    def valid(kind: str, path: str, x: np.ndarray, body: bytes) -> Case:
        return Case(kind, http_request(path, body, key), 200, stack(model.predict(x), x), weight=3)

    cases = []
    for i in range(2):  # two distinct images / batches per valid kind
        one = rng.random((1, *shape), dtype=np.float32)
        many = rng.random((BATCH, *shape), dtype=np.float32)
        cases += [
            valid("predict_1", "/predict", one, predict_body(one[0])),
            valid(f"predict_{BATCH}", "/predict", many, predict_body(many)),
            valid("infer_1", infer_path, one, infer_body(one)),
            valid(f"infer_{BATCH}", infer_path, many, infer_body(many)),
        ]
    good = rng.random((1, *shape), dtype=np.float32)
    bad = [
        ("wrong_shape", "/predict", predict_body(good[:, :, :-1]), key, 400),
        ("non_numeric", "/predict", orjson.dumps({"inputs": np.full(shape, "x").tolist()}), key, 400),
        ("nan", "/predict", json.dumps({"inputs": np.where(good > 0.5, np.nan, good).tolist()}).encode(), key, 400),
        ("out_of_range", "/predict", predict_body(good * 255), key, 400),
        ("too_many_items", "/predict", orjson.dumps({"inputs": np.full((max_batch + 1, *shape), 0.5).tolist()}), key, 400),
        ("malformed_json", "/predict", predict_body(good)[:-7], key, 400),
        ("wrong_tensor_name", infer_path, infer_body(good, "pixels"), key, 400),
        ("unknown_model", "/v2/models/nope/infer", infer_body(good), key, 404),
        ("no_key", "/predict", predict_body(good), None, 401),
        ("unknown_key", "/predict", predict_body(good), "eg_not-a-key", 401),
    ]
    cases += [Case(kind, http_request(path, body, k), status) for kind, path, body, k, status in bad]
    # declared too large: the server must refuse from the header alone, before reading a byte of body
    cases.append(Case("too_large", http_request("/predict", b"", key, content_length=max_body + 1), 413))
    return cases


def check(results: list[tuple[int, int, bytes, int]], cases: list[Case], classes: list[str]) -> dict[str, Any]:
    """Statuses as expected, every 200 answer equal to the local defended model's."""
    wrong_status, wrong_answer, statuses = [], 0, {}
    for index, status, body, _ in results:
        case = cases[index]
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status != case.status:
            wrong_status.append(f"{case.kind}: got {status}, expected {case.status}: {body[:200]!r}")
            continue
        reply = orjson.loads(body)
        if case.expected is None:
            if not isinstance(reply.get("error"), str):
                wrong_status.append(f"{case.kind}: {status} without an error sentence")
            continue
        if "outputs" in reply:  # v2 infer
            out = reply["outputs"][0]
            served, labels = np.reshape(out["data"], out["shape"]), None
        else:
            served, labels = np.asarray(reply["probabilities"]), reply["labels"]
        expected_labels = [classes[i] for i in case.expected.argmax(axis=1)]
        if not np.array_equal(served, case.expected) or (labels is not None and labels != expected_labels):
            wrong_answer += 1
    return {
        "by_status": dict(sorted(statuses.items())),
        "server_errors_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "wrong_status": len(wrong_status),
        "wrong_status_examples": wrong_status[:5],
        "valid_answers_checked": sum(1 for i, s, _, _ in results if cases[i].expected is not None and s == 200),
        "valid_answers_differing_from_local": wrong_answer,
    }


def bare_latency(model: DeployedModel, stack: Any, x: np.ndarray, reps: int) -> dict[str, float]:
    """Median in-process cost of the same query: onnxruntime alone (the model's own one-thread
    session), then the full local pipeline."""
    session, feed = model.backend.session, {model.backend.input_name: model.normalise(x)}

    def median_us(fn: Any) -> float:
        return round(bench_median_us(fn, reps, reps // 10), 1)

    return {
        "onnxruntime_session_run_p50_us": median_us(lambda: session.run(None, feed)),
        "deployed_model_plus_stack_p50_us": median_us(lambda: stack(model.predict(x), x)),
    }


def run_deployment(export: Path, defense: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    model = DeployedModel.load(export, threads=1)
    stack = parse_stack(defense)
    keys_db = tmp / f"keys-{len(list(tmp.iterdir()))}.db"
    key = KeyStore(keys_db, create=True).add("load-test")  # no budget, no rate limit: measure the server
    rng = np.random.default_rng(args.seed)
    max_body = default_max_body_bytes(model.input_shape, args.max_batch)
    cases = build_cases(model, stack, key, rng, args.max_batch, max_body)
    weights = np.array([c.weight for c in cases], np.float64)
    plan = rng.choice(len(cases), size=args.requests, p=weights / weights.sum()).tolist()
    single = next(i for i, c in enumerate(cases) if c.kind == "predict_1")
    raws = [c.raw for c in cases]

    with Server(export, keys_db, defense=defense, max_batch=args.max_batch) as server:
        deadline = time.monotonic() + args.max_seconds
        warm, _ = run_async(drive(server.port, [single] * 50, raws, 1, deadline))
        seq, _ = run_async(drive(server.port, [single] * args.latency_requests, raws, 1, deadline))
        deadline = time.monotonic() + args.max_seconds
        load, seconds = run_async(drive(server.port, plan, raws, args.clients, deadline))
    checks = check(warm + seq + load, cases, model.manifest.classes)
    valid = [r for r in load if cases[r[0]].expected is not None]
    items = sum(len(cases[r[0]].expected) for r in valid if r[1] == 200)
    x = rng.random((1, *model.input_shape), dtype=np.float32)
    bare = bare_latency(model, stack, x, args.bare_reps)
    latency = percentiles_us([r[3] for r in seq])
    return {
        "defense": stack.spec,
        "latency_single_client": {"requests": len(seq), **latency},
        "load": {
            **load_summary(load, seconds, args.clients),
            "items_answered_per_s": round(items / seconds, 1),
            "valid_requests": len(valid),
            "invalid_requests": len(load) - len(valid),
            "p50_us_valid_single_image": percentiles_us([r[3] for r in valid if cases[r[0]].kind.endswith("_1")])["p50_us"],
        },
        "in_process": bare,
        "server_overhead_p50_us": round(latency["p50_us"] - bare["onnxruntime_session_run_p50_us"], 1),
        "checks": checks,
    }


def defense_overhead(export: Path, defense: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Issue 4's bar: the stack alone against one served request of the same batch, without a defense.

    Beside the ratio, two paired measures of what the stack really adds to a request: over HTTP
    (both servers up, requests alternated; noisy on a busy machine), and inside the server without
    HTTP (`Service.predict` + JSON, the two deployments alternated in this process), where the stack
    runs with its caches cold from the rest of the request and costs more than in a tight loop.
    """
    model = DeployedModel.load(export, threads=1)
    stack = parse_stack(defense)
    rng = np.random.default_rng(args.seed)
    specs = ("none", defense)
    dbs = [tmp / f"keys-overhead-{i}.db" for i in range(len(specs))]
    keys = [KeyStore(db, create=True).add("overhead") for db in dbs]  # no budget, no rate limit
    warmup = 10
    queries = {}
    for b in (b for b in BATCHES if b <= args.max_batch):
        x = rng.random((b, *model.input_shape), dtype=np.float32)
        rounds = args.latency_requests if b == 1 else max(10, args.latency_requests // 20)
        queries[b] = (x, predict_body(x), rounds + warmup)
    served = {}
    with contextlib.ExitStack() as running:
        ports = [running.enter_context(Server(export, db, defense=spec, max_batch=args.max_batch)).port for db, spec in zip(dbs, specs)]
        for b, (x, body, rounds) in queries.items():
            probs = model.predict(x)
            results = run_async(alternate(ports, [http_request("/predict", body, key) for key in keys], rounds))
            for answers, want in zip(results, (probs, stack(probs, x))):
                status, reply, _ = answers[0]
                if status != 200 or not np.array_equal(orjson.loads(reply)["probabilities"], want):
                    raise EdgeguardError(f"the overhead phase got a wrong answer at batch {b}: {status} {reply[:200]!r}")
            served[b] = [[t for _, _, t in r[warmup:]] for r in results]
    services = [Service.load(ServeConfig(folder=export, keys=db, defense=spec, max_batch=args.max_batch)) for db, spec in zip(dbs, specs)]
    batches = {}
    for b, (x, body, rounds) in queries.items():
        inside: list[list[int]] = [[], []]
        for i in range(rounds):
            for j in (0, 1) if i % 2 == 0 else (1, 0):
                start = time.perf_counter_ns()
                dumps(services[j].predict(services[j].authenticate(keys[j]), body))
                inside[j].append(time.perf_counter_ns() - start)
        probs = model.predict(x)
        bare_ns, defended_ns = served[b]
        # Ratios are taken of the rounded numbers the JSON shows, so a reader can recompute them exactly.
        stack_us = round(bench_median_us(lambda: stack(probs, x), args.bare_reps, args.bare_reps // 10), 2)
        bare_p50 = round(statistics.median(bare_ns) / 1e3, 1)
        over_http = round(paired_difference_us(bare_ns, defended_ns), 1)
        in_server = round(paired_difference_us(inside[0][warmup:], inside[1][warmup:]), 1)
        batches[str(b)] = {
            "requests_each": len(bare_ns),
            "stack_us": stack_us,
            "served_p50_us_no_defense": bare_p50,
            "served_p50_us_defended": round(statistics.median(defended_ns) / 1e3, 1),
            "ratio": round(stack_us / bare_p50, 4),
            "served_paired_difference_us": over_http,
            "served_paired_difference_ratio": round(over_http / bare_p50, 4),
            "in_server_paired_difference_us": in_server,
            "in_server_paired_difference_ratio": round(in_server / bare_p50, 4),
        }
    for service in services:
        service.store.close()
    return {
        "what": (
            "ratio: the stack alone (in-process median, as bench_defenses.py) / p50 of one served request of the same batch "
            "without a defense (both servers up at once, requests alternated from one client); paired differences: median over "
            "pairs of defended - undefended, over HTTP and inside the server (Service.predict + JSON, no HTTP)"
        ),
        "stack": stack.spec,
        "bar": OVERHEAD_BAR,
        "within_bar": all(v["ratio"] <= OVERHEAD_BAR for v in batches.values()),
        "batches": batches,
    }


def render(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} on {result['machine']['processor']}, {result['machine']['cpu_count']} CPUs"]
    for d in result["deployments"]:
        lat, load, bare, ok = d["latency_single_client"], d["load"], d["in_process"], d["checks"]
        lines.append(f"defense: {d['defense']}")
        lines.append(
            f"  1 client:   p50 {lat['p50_us']:.0f} us  p99 {lat['p99_us']:.0f} us  "
            f"(bare onnxruntime p50 {bare['onnxruntime_session_run_p50_us']:.0f} us, model + stack {bare['deployed_model_plus_stack_p50_us']:.0f} us)"
            f"  -> server overhead {d['server_overhead_p50_us']:.0f} us"
        )
        lines.append(
            f"  {load['clients']} clients: {load['requests']} requests ({load['invalid_requests']} invalid) in {load['seconds']:.2f} s = "
            f"{load['requests_per_s']:.0f} req/s, {load['items_answered_per_s']:.0f} items/s; p50 {load['p50_us']:.0f} us  p99 {load['p99_us']:.0f} us"
        )
        lines.append(
            f"  checks: statuses {ok['by_status']}, 5xx {ok['server_errors_5xx']}, wrong status {ok['wrong_status']}, "
            f"answers differing from local {ok['valid_answers_differing_from_local']} of {ok['valid_answers_checked']}"
        )
    over = result["defense_overhead"]
    lines.append(f"defense overhead of `{over['stack']}` (bar: {over['bar']:.0%} of a served request):")
    for b, v in over["batches"].items():
        lines.append(
            f"  batch {b}: stack {v['stack_us']:.1f} us = {v['ratio']:.1%} of the undefended p50 {v['served_p50_us_no_defense']:.0f} us; "
            f"paired difference over HTTP {v['served_paired_difference_us']:.1f} us ({v['served_paired_difference_ratio']:.1%}), "
            f"inside the server {v['in_server_paired_difference_us']:.1f} us ({v['in_server_paired_difference_ratio']:.1%})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True, help="export folder (manifest.json + model.int8.onnx)")
    parser.add_argument("--defense", default=STACK, help="the stack of the second deployment (the first has none)")
    parser.add_argument("--requests", type=int, default=3000, help="requests in the load phase (>= 1000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--latency-requests", type=int, default=1000, help="sequential single-image requests")
    parser.add_argument("--bare-reps", type=int, default=2000, help="in-process timings per median")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap on each phase's duration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.json"))
    args = parser.parse_args(argv)
    if args.requests < 1000 or args.clients < 1 or args.latency_requests < 1:
        parser.error("--requests must be >= 1000, --clients and --latency-requests >= 1")

    def measure() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            deployments = [run_deployment(args.export, spec, args, Path(tmp)) for spec in ("none", args.defense)]
            overhead = defense_overhead(args.export, args.defense, args, Path(tmp))
        model = DeployedModel.load(args.export)
        installed = installed_versions(SERVING_PACKAGES)
        return {
            "what": "edgeguard serve on loopback: latency, throughput, server overhead, correctness",
            "model": f"{model.manifest.name} ({model.entry.file}, input {list(model.input_shape)})",
            "machine": {p: installed.get(p, "not installed") for p in SERVING_PACKAGES},
            "deployments": deployments,
            "defense_overhead": overhead,
        }

    def failed(result: dict[str, Any]) -> bool:
        return any(c["server_errors_5xx"] or c["wrong_status"] or c["valid_answers_differing_from_local"] for c in (d["checks"] for d in result["deployments"]))

    return run_script(args, measure, render, failed)


if __name__ == "__main__":
    sys.exit(main())
