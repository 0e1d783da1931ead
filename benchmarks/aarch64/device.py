"""Run on the device (a Raspberry Pi, or aarch64 under qemu): parity with the workstation, then the benchmark.

On the workstation, where the export was made (needs the train extra, for the data):

    python benchmarks/aarch64/device.py reference export/digits-small-cnn-qat-qnnpack-s0
    scp -r export/digits-small-cnn-qat-qnnpack-s0 pi@raspberrypi.local:~/models/   # the reference is inside

On the Pi (pip install "edgeguard[runtime]" and a source checkout for this script; no torch):

    python benchmarks/aarch64/device.py check ~/models/digits-small-cnn-qat-qnnpack-s0 --bench \
        --out benchmarks/results/pi.json

`check` compares every model file the device can run with the workstation's logits (argmax
agreement, max |diff|, bit-identity on the test split and natural patches) and, with --bench, times
them as `edgeguard bench` does (threads 1 and all, batches 1/8/64, peak memory). It exits 1 when an
int8 file is not bit-identical. Under qemu the timings measure the emulator, not a Pi.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeguard.bench.models import bench_export, markdown
from edgeguard.bench.parity import check_parity, write_reference
from edgeguard.bench.timing import machine
from edgeguard.files import atomic_write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["reference", "check"])
    parser.add_argument("export", type=Path)
    parser.add_argument("--reference", type=Path, help="reference file (default: parity-reference.npz in the export folder)")
    parser.add_argument("--bench", action="store_true", help="check: also time every model (edgeguard bench, torch left out)")
    parser.add_argument("--runs", type=int, default=200, help="--bench: timed calls at batch 1")
    parser.add_argument("--out", type=Path, help="check: write the result as JSON here")
    args = parser.parse_args()
    if args.command == "reference":
        print(f"saved {write_reference(args.export, args.reference)}")
        return
    result = {"machine": machine(), "export": str(args.export), "parity": check_parity(args.export, args.reference)}
    for file, r in result["parity"]["models"].items():
        print(f"{file}: " + ", ".join(f"{s} argmax {r[s]['argmax_agreement']:.4f} max|diff| {r[s]['max_abs_diff']:.3g}" for s in ("test", "ood")) + (" (bit-identical)" if r["exact"] else ""))
    if args.bench:
        result["bench"] = bench_export(args.export, runs=args.runs, torch=False, memory=True)
        print(markdown(result["bench"]))
    if args.out:
        print(f"saved {atomic_write_json(args.out, result)}")
    sys.exit(0 if all(r["exact"] for r in result["parity"]["models"].values() if r["precision"] == "int8") else 1)


if __name__ == "__main__":
    main()
