"""Load test of `edgeguard serve` with JPEG files as bodies: throughput and latency, decode apart from inference.

    python benchmarks/load_test_images.py --export /tmp/final_export/digits-small-cnn-qat-x86-s0
    python benchmarks/load_test_images.py --export ... --out benchmarks/results/serve-images.json

Two deployments, each fed JPEG files of exactly its input size (so the server decodes, converts and
scales, but does not resize): the export given (28x28 digits), and a synthetic (3, 224, 224) model
(`bench.defenses.synthetic_export`: random weights, labelled synthetic) unless --export-224 names a
real one. For each, in one run:
1. start `edgeguard serve` on 127.0.0.1 (a fresh keys database, one onnxruntime thread, no defense);
2. latency: --latency-requests single-file `POST /predict` requests (`Content-Type: image/jpeg`),
   one at a time on one keep-alive connection -> p50 / p99;
3. load: --requests requests from --clients keep-alive connections -> requests/s, p50 / p99;
4. every answer checked against `DeployedModel` on `ImageSpec.load` of the same file (exact float64);
5. in this process, on the same files: the decode alone (`ImageSpec.load`, as the server calls it)
   and the model alone (`DeployedModel.predict` of the decoded image), as medians, so that a
   request's time splits into decode, inference and the rest (HTTP, key, charge, JSON).
The JPEGs are synthetic pictures (smooth colour fields and strokes, quality 90), 8 distinct per size.
Bounded like load_test.py: each phase stops after its count or --max-seconds. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from edgeguard.bench.defenses import synthetic_export
from edgeguard.bench.loopback import (
    Server,
    drive,
    http_request,
    load_summary,
    percentiles_us,
    predict_body,
    run_async,
)
from edgeguard.bench.script import run_script
from edgeguard.bench.timing import median_us
from edgeguard.runtime import DeployedModel
from edgeguard.runtime.preprocess import FILE_FORMATS
from edgeguard.serve.keys import KeyStore

FILES = 8  # distinct JPEGs per size


def jpegs(size: int, n: int, seed: int) -> list[bytes]:
    """n JPEG files of size x size: smooth colour fields with a few bright strokes, quality 90."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    files = []
    for _ in range(n):
        a = np.stack([np.sin(xx * rng.uniform(2, 12) + rng.uniform(0, 6)) for _ in range(3)], axis=-1) * np.cos(yy * rng.uniform(2, 12))[..., None]
        a = (a - a.min()) / (np.ptp(a) + 1e-9) * 200
        for _ in range(3):
            r, c = rng.integers(0, size, 2)
            a[r : r + max(2, size // 6), c : c + max(1, size // 20)] = 255
        buffer = io.BytesIO()
        Image.fromarray(a.astype(np.uint8), "RGB").save(buffer, "JPEG", quality=90)
        files.append(buffer.getvalue())
    return files


def run_size(export: Path, synthetic: bool, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    model = DeployedModel.load(export, threads=1)
    size = model.input_shape[1]
    files = jpegs(size, FILES, args.seed)
    decoded = [model.image_spec.load(f, FILE_FORMATS) for f in files]
    expected = [model.predict(x[None]).tolist() for x in decoded]
    keys_db = tmp / f"keys-{size}.db"
    key = KeyStore(keys_db, create=True).add("load-test")  # no budget, no rate limit: measure the server
    raws = [http_request("/predict", f, key, content_type="image/jpeg") for f in files]
    rng = np.random.default_rng(args.seed)
    plan = rng.integers(0, FILES, args.requests).tolist()
    with Server(export, keys_db) as server:
        deadline = time.monotonic() + args.max_seconds
        run_async(drive(server.port, [0] * 50, raws, 1, deadline))  # warm-up
        seq, _ = run_async(drive(server.port, [i % FILES for i in range(args.latency_requests)], raws, 1, deadline))
        deadline = time.monotonic() + args.max_seconds
        load, seconds = run_async(drive(server.port, plan, raws, args.clients, deadline))
    wrong = sum(1 for i, status, body, _ in seq + load if status != 200 or orjson.loads(body)["probabilities"] != expected[i])
    decode_us = float(np.median([median_us(lambda: model.image_spec.load(f, FILE_FORMATS), args.reps, args.reps // 10) for f in files]))
    infer_us = float(np.median([median_us(lambda: model.predict(x[None]), args.reps, args.reps // 10) for x in decoded]))
    latency = percentiles_us([r[3] for r in seq])
    return {
        "model": f"{model.manifest.name} (input {list(model.input_shape)})" + (" [synthetic: random weights]" if synthetic else ""),
        "image": f"{size}x{size} RGB JPEG, quality 90",
        "jpeg_bytes_mean": round(float(np.mean([len(f) for f in files])), 1),
        "json_bytes_same_pixels": len(predict_body(decoded[0])),
        "latency_single_client": {"requests": len(seq), **latency},
        "load": load_summary(load, seconds, args.clients),
        "in_process_p50_us": {
            "decode": round(decode_us, 1),
            "inference": round(infer_us, 1),
            "rest_of_request": round(latency["p50_us"] - decode_us - infer_us, 1),
        },
        "answers_differing_from_local_or_not_200": wrong,
    }


def render(result: dict[str, Any]) -> str:
    lines = [f"{result['machine']['processor']}, {result['machine']['cpu_count']} CPUs"]
    for r in result["sizes"]:
        lat, load, split = r["latency_single_client"], r["load"], r["in_process_p50_us"]
        lines += [
            f"{r['image']} ({r['jpeg_bytes_mean']:.0f} bytes; the same pixels as JSON: {r['json_bytes_same_pixels']} bytes) -> {r['model']}",
            f"  1 client:  p50 {lat['p50_us']:.0f} us  p99 {lat['p99_us']:.0f} us  = decode {split['decode']:.0f} + inference {split['inference']:.0f} + the rest {split['rest_of_request']:.0f} us",
            f"  {load['clients']} clients: {load['requests_per_s']:.0f} requests/s  p50 {load['p50_us'] / 1e3:.1f} ms  p99 {load['p99_us'] / 1e3:.1f} ms",
            f"  answers differing from the local model (or not 200): {r['answers_differing_from_local_or_not_200']}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True, help="an export folder (the 28x28 digits model)")
    parser.add_argument("--export-224", type=Path, help="an export with a (3, 224, 224) input (default: a synthetic one)")
    parser.add_argument("--requests", type=int, default=2000, help="requests in each load phase")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=500)
    parser.add_argument("--reps", type=int, default=300, help="in-process timings per median")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap on each phase's duration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve-images.json"))
    args = parser.parse_args(argv)

    def measure() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            big = args.export_224 or synthetic_export(Path(tmp) / "synthetic-224", size=224)
            sizes = [run_size(args.export, False, args, Path(tmp)), run_size(big, args.export_224 is None, args, Path(tmp))]
        return {
            "what": "edgeguard serve on loopback, JPEG bodies (POST /predict, Content-Type: image/jpeg): latency, throughput, decode vs inference",
            "sizes": sizes,
        }

    return run_script(args, measure, render, lambda result: any(r["answers_differing_from_local_or_not_200"] for r in result["sizes"]))


if __name__ == "__main__":
    sys.exit(main())
