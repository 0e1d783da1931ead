"""Streaming benchmark: peak memory of training on a folder of images must not grow with the folder.

    nice python benchmarks/streaming.py                      # 2,000 and 20,000 images, ~10 minutes on 2 cores
    nice python benchmarks/streaming.py --sizes 500,5000 --steps 5 --out /tmp/streaming.json   # a quick look

For each size, a folder of generated 224x224 JPEGs (GENERATED data: noise backgrounds with coloured
shapes, 4 classes by colour; written once under /tmp/edgeguard-streaming/, never a real dataset) is
read by a fresh process that does what `edgeguard train --dataset imagefolder --workers 2` does to
it, in the library's own code: the scan (every file decoded once), the streamed mean/std over the
train split, --steps training steps of small-cnn at 224x224 through the DataLoader with 2 worker
processes (shuffled over the whole train split), and accuracy over the whole val split in batches.
A fixed number of steps, not an epoch: an epoch of 16,000 images at 224 px takes most of an hour on
these cores, and memory does not grow with the steps taken but with what is held.

The parent samples the child's process tree (the child and its loader workers) every 0.1 s from
/proc: peak RSS summed over the tree (shared pages counted once per process: an upper bound) and
peak PSS (shared pages split between the processes sharing them: the tree's real footprint).
Writes --out (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/edgeguard-streaming")
SIDE = 224
COLOURS = ((220, 40, 40), (40, 190, 40), (40, 60, 230), (230, 200, 40))


def generate(folder: Path, n: int, seed: int = 0) -> Path:
    """n generated JPEGs in folder/{train,val}/<class>/ (80/20), written once (a marker file says done)."""
    from PIL import Image, ImageDraw
    from tqdm.auto import tqdm

    if (folder / "done").is_file():
        return folder
    rng = np.random.default_rng(seed)
    backgrounds = [Image.fromarray(rng.integers(0, 256, (SIDE // 8, SIDE // 8, 3), dtype=np.uint8)).resize((SIDE, SIDE)) for _ in range(16)]
    for i in tqdm(range(n), desc=f"generate {n} images", unit="image"):
        c = i % len(COLOURS)
        out = folder / ("val" if i % 5 == 4 else "train") / f"class{c}"
        out.mkdir(parents=True, exist_ok=True)
        image = backgrounds[int(rng.integers(len(backgrounds)))].copy()
        x, y, r = rng.integers(20, SIDE - 20, 2).tolist() + [int(rng.integers(15, 60))]
        ImageDraw.Draw(image).ellipse((x - r, y - r, x + r, y + r), fill=COLOURS[c])
        image.save(out / f"{i:06d}.jpg", quality=90)
    (folder / "done").write_text(str(n))
    return folder


def train_child(folder: str, steps: int, workers: int, batch: int) -> dict:
    """In the measured process: scan, statistics, `steps` training steps, whole-val accuracy."""
    import torch

    from edgeguard.data import load_dataset
    from edgeguard.models import build_model
    from edgeguard.runtime.preprocess import Normaliser
    from edgeguard.train.loop import Shuffled, accuracy, loader, seed_everything
    from edgeguard.train.losses import cross_entropy

    torch.set_num_threads(1)
    seconds = {}
    start = time.perf_counter()
    data = load_dataset("imagefolder", folder)
    norm = Normaliser(data.mean, data.std)
    seconds["scan_and_stats"] = time.perf_counter() - start
    model = build_model("small-cnn", data.input_shape, len(data.classes))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = seed_everything(0)
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader(data.train, norm, Shuffled(len(data.train), batch, gen), workers)):
        if step == steps:
            break
        value = cross_entropy(x, y, model)
        opt.zero_grad()
        value.backward()
        opt.step()
    seconds["train_steps"] = time.perf_counter() - start
    start = time.perf_counter()
    acc = accuracy(model, data.test, norm, workers)
    seconds["val_accuracy"] = time.perf_counter() - start
    return {"train": len(data.train), "pool": len(data.pool), "val": len(data.test), "input_shape": list(data.input_shape),
            "val_accuracy": acc, "seconds": {k: round(v, 1) for k, v in seconds.items()}}  # fmt: skip


def tree(pid: int) -> list[int]:
    """pid and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def kib(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(folder: Path, steps: int, workers: int, batch: int) -> dict:
    """Run train_child in a fresh process; sample its tree's memory until it exits."""
    result = folder / "result.json"
    cmd = [sys.executable, __file__, "--child", str(folder), "--steps", str(steps), "--workers", str(workers), "--batch", str(batch)]
    child = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    peak_rss = peak_pss = processes = 0
    while child.poll() is None:
        pids = tree(child.pid)
        peak_rss = max(peak_rss, sum(kib(f"/proc/{p}/status", "VmRSS:") for p in pids))
        peak_pss = max(peak_pss, sum(kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids))
        processes = max(processes, len(pids))
        time.sleep(0.1)
    if child.returncode:
        raise SystemExit(f"the measured run failed ({child.returncode})")
    return {**json.loads(result.read_text()), "peak_rss_mib": round(peak_rss / 1024, 1), "peak_pss_mib": round(peak_pss / 1024, 1), "processes": processes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="images per generated folder")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/streaming.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row = train_child(args.child, args.steps, args.workers, args.batch)
        (Path(args.child) / "result.json").write_text(json.dumps(row))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        folder = generate(ROOT / f"generated-{n}", n)
        rows.append({"images": n, "data": "generated 224x224 JPEGs (noise + shapes), not a real dataset", **measure(folder, args.steps, args.workers, args.batch)})
        print(json.dumps(rows[-1]))
    result = {"steps": args.steps, "batch": args.batch, "workers": args.workers, "model": "small-cnn", "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| images | peak RSS, tree (MiB) | peak PSS, tree (MiB) | processes | scan + stats s | steps s | val s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["seconds"]
        print(f"| {r['images']} | {r['peak_rss_mib']} | {r['peak_pss_mib']} | {r['processes']} | {s['scan_and_stats']} | {s['train_steps']} | {s['val_accuracy']} |")


if __name__ == "__main__":
    main()
