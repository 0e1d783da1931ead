"""aarch64 under qemu user mode: parity with x86 and a served answer, per emulated Pi core.

    bash benchmarks/aarch64/check.sh          # builds the userland, then runs this

For each export (default: the default run trained for the x86 and for the qnnpack qconfig) and each
of -cpu cortex-a72 (Raspberry Pi 4: no dot-product instructions) and cortex-a76 (Pi 5):
1. `device.py check` under emulation: every model file (ONNX and TFLite, ai-edge-litert's aarch64
   wheel) against the logits computed here on x86 (the digits test split and 500 natural patches);
2. `edgeguard serve` under emulation and on x86, from each int8 file (--format onnx, tflite), the
   same POST /predict (test images and natural patches) to both: the same labels, and probabilities
   within 1e-6 (the int8 logits are bit-identical; the server's float32 softmax may differ in its
   last bits between x86 and NEON).
Writes benchmarks/results/aarch64-parity.json and exits 1 unless every int8 file is bit-identical
and every served answer agrees as above. Timings under qemu measure the emulator: none are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from edgeguard.bench.loopback import Server, predict_body
from edgeguard.bench.parity import REFERENCE, write_reference
from edgeguard.bench.timing import machine
from edgeguard.export.pipeline import default_export
from edgeguard.files import atomic_write_json
from edgeguard.formats import FORMATS
from edgeguard.manifest import Manifest
from edgeguard.serve.keys import KeyStore

CPUS = ("cortex-a72", "cortex-a76")
DEVICE = Path(__file__).with_name("device.py")
SERVED = 8  # images per served request: half test split, half natural patches
TOLERANCE = 1e-6  # served probabilities may differ from x86's by this much, ~8 float32 eps (see compare_answers)


class Guest:
    """The aarch64 python under qemu-aarch64 with one emulated core model."""

    def __init__(self, qemu: Path, rootfs: Path, site: Path, cpu: str):
        self.cpu = cpu
        self.python = (str(qemu), "-cpu", cpu, "-L", str(rootfs), str(rootfs / "usr/bin/python3.11"))
        self.env = {"PYTHONPATH": str(site)}

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.python, *args], env={**os.environ, **self.env}, check=False, capture_output=True, text=True, timeout=900)


def device_check(guest: Guest, export: Path, out: Path) -> dict[str, Any]:
    out.unlink(missing_ok=True)  # a failed run must not leave the previous run's result to be read
    done = guest.run(str(DEVICE), "check", str(export), "--out", str(out))
    print(done.stdout, end="")
    if not out.is_file():
        raise SystemExit(f"device.py check under {guest.cpu} failed:\n{done.stderr}")
    return json.loads(out.read_text())


def ask(url: str, key: str, body: bytes) -> Any:
    response = httpx.post(f"{url}/predict", content=body, headers={"Content-Type": "application/json", "X-API-Key": key}, timeout=300)
    if response.status_code != 200:
        raise SystemExit(f"/predict answered {response.status_code}: {response.content[:300]!r}")
    return response.json()


def with_every_format(export: Path, runs: Path) -> Path:
    """A default export cached before a format's exporter was installed (TFLite's) gets its int8 file now."""
    from edgeguard.export.pipeline import export_run

    have = {e.format for e in Manifest.load(export).models if e.precision == "int8"}
    if missing := tuple(f for f in FORMATS if f not in have):
        export_run(runs / export.name, export.parent, int8=True, formats=missing)
    return export


def served_answer(export: Path, body: bytes, work: Path, guest: Guest | None, format: str) -> Any:
    """The answer of `edgeguard serve --format FORMAT` (under qemu when `guest` is given), from a fresh keys database."""
    emulated = {"python": guest.python, "env": guest.env, "timeout": 600.0} if guest else {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        keys = Path(tmp) / "keys.db"
        key = KeyStore(keys, create=True).add("aarch64-check")
        with Server(export, keys, "--format", format, max_batch=SERVED, **emulated) as server:
            return ask(server.url, key, body)


def compare_answers(answer: Any, x86: Any) -> dict[str, Any]:
    """Labels must be equal, probabilities within TOLERANCE; the float32 ulps between them are reported.

    With bit-identical logits the served softmax may still differ in its last bits: the server
    computes it in float32 with numpy, whose exp is a different SIMD routine on x86 and on NEON.
    """
    a, b = (np.asarray(ans["probabilities"], np.float32) for ans in (answer, x86))
    ulps = np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))
    return {
        "labels_equal": answer["labels"] == x86["labels"], "identical": answer == x86,
        "max_abs_diff": float(np.abs(a.astype(np.float64) - b).max()), "max_float32_ulps": int(ulps.max()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exports", nargs="*", type=Path)
    parser.add_argument("--qemu", type=Path, required=True)
    parser.add_argument("--rootfs", type=Path, required=True)
    parser.add_argument("--site", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="cache folder for default exports and scratch files")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/aarch64-parity.json"))
    args = parser.parse_args()
    runs = args.work / "runs"
    exports = args.exports or [with_every_format(default_export(runs, args.work / "export", backend), runs) for backend in ("x86", "qnnpack")]
    qemu_version = subprocess.run([str(args.qemu), "--version"], check=True, capture_output=True, text=True).stdout.splitlines()[0]
    report: dict[str, Any] = {
        "what": "edgeguard[runtime,tflite] on aarch64 under qemu user-mode emulation vs this x86 machine: parity and serving, no timings",
        "host": machine(), "qemu": qemu_version, "exports": {},
    }  # fmt: skip
    ok = True
    for export in exports:
        write_reference(export)
        ref = np.load(export / REFERENCE)
        body = predict_body(np.concatenate([ref["inputs/test"][: SERVED // 2], ref["inputs/ood"][: SERVED // 2]]))
        manifest = Manifest.load(export)
        formats = [e.format for e in manifest.models if e.precision == "int8"]  # each int8 file is served
        x86_answers = {f: served_answer(export, body, args.work, None, f) for f in formats}
        entry = {"quantization": manifest.entry("int8").quantization.get("weights"), "cpus": {}}
        for cpu in CPUS:
            guest = Guest(args.qemu, args.rootfs, args.site, cpu)
            print(f"== {export.name} under qemu -cpu {cpu}")
            checked = device_check(guest, export, args.work / f"{export.name}-{cpu}.json")
            served = {}
            for f in formats:
                s = served[f] = {"items": SERVED, **compare_answers(served_answer(export, body, args.work, guest, f), x86_answers[f])}
                s["passed"] = s["labels_equal"] and s["max_abs_diff"] <= TOLERANCE
                same = "identical" if s["identical"] else f"within {s['max_float32_ulps']} float32 ulp ({s['max_abs_diff']:.2g})"
                print(f"edgeguard serve --format {f} under {cpu}: labels {'equal' if s['labels_equal'] else 'DIFFER'}, probabilities {same} of x86's")
            keys = ("machine", "cpu_features", "python", "numpy", "onnxruntime", "ai-edge-litert")
            guest_machine = {k: checked["machine"].get(k) for k in keys}
            entry["cpus"][cpu] = {"guest": guest_machine, "parity": checked["parity"], "serve": served}
            int8_exact = all(r["exact"] for r in checked["parity"]["models"].values() if r["precision"] == "int8")
            ok = ok and int8_exact and all(s["passed"] for s in served.values())
        report["exports"][manifest.name] = entry
    report["passed"] = ok
    print(f"saved {atomic_write_json(args.out, report)}; {'PASSED' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
