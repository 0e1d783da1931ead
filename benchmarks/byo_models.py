"""Your own photos, a real architecture: the docs' flow run as a user runs it, scored from the manifest alone.

The data is a folder edgeguard has never seen: 64x64 crops of four of scikit-image's bundled colour
photographs (astronaut, coffee, chelsea, rocket), one class per source photo, saved as JPEG and PNG
in ImageFolder layout. train/ crops come from the left 70% of each photo, val/ crops from the right
30% that training never sees. It is photographs' content, but four photos: it shows that the flow
holds at real architecture sizes, not how these models do on anyone's photo collection.

For each model, the real CLI runs as subprocesses (`edgeguard train --dataset imagefolder ...
--method divqat`, then `edgeguard export --int8` and `--fp32`); the val split is then scored by a
few lines of numpy + Pillow + onnxruntime that read nothing but manifest.json (not edgeguard's
preprocessing). Last, the first run's fp32 teacher, saved in torchvision's key names, is passed
back with `--teacher`: the run must skip teacher training and start from exactly those weights.

    python benchmarks/byo_models.py                                   # mobilenet_v2, resnet18, the --teacher run
    python benchmarks/byo_models.py --models mobilenet_v2 --method qat --out benchmarks/results/byo-models-qat.json
    python benchmarks/byo_models.py --models resnet18 --epochs 2 --qat-epochs 1 --out /tmp/r.json
    python benchmarks/byo_models.py --divqat="--lam 0.5" --qat-epochs 8 --no-teacher-run --out /tmp/r.json
    python benchmarks/byo_models.py --photos tuning --models mobilenet_v2 --out /tmp/t.json    # the tuning folder (choose options here)
    python benchmarks/byo_models.py --photos far-tuning --models resnet18 --out /tmp/f.json   # the tuning folder whose val is as far as the report's
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from edgeguard.data.natural import bundled_photo
from edgeguard.export.onnx import contents

OUT = Path(__file__).parent / "results" / "byo-models.json"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # colour photos bundled in scikit-image's wheel
# four other bundled colour photos: the folder DivQAT's options were tuned on, so the report folder stays unseen
TUNING_PHOTOS = ("immunohistochemistry", "hubble_deep_field", "retina", "stereo_motorcycle")
# a second tuning folder whose photos change across their width, as the report folder's do (a temple then
# trees, a man then a lawn): its val crops are as far from its train crops. china and flower ship with
# scikit-learn, camera is scikit-image's grey cameraman (saved grey: the loader makes it RGB)
FAR_TUNING_PHOTOS = ("china", "flower", "stereo_motorcycle", "camera")
FOLDERS = {"report": PHOTOS, "tuning": TUNING_PHOTOS, "far-tuning": FAR_TUNING_PHOTOS}
VAL_FROM = 0.7  # val crops lie right of this fraction of the width, train crops left of it


def write_photo_folder(root: Path, per_class: dict[str, int], size: int, seed: int, photos: tuple[str, ...] = PHOTOS) -> Path:
    """root/{train,val}/<photo>/NNN.{jpg,png}: random square crops (side 64-160 px, or as wide as the
    strip allows), resized to `size`, half of them mirrored; JPEG and PNG alternate."""
    rng = np.random.default_rng(seed)
    for name in photos:
        photo = bundled_photo(name)
        h, w = photo.shape[:2]
        cut = int(w * VAL_FROM)
        for split, (lo, hi) in (("train", (0, cut)), ("val", (cut, w))):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class[split]):
                side = int(rng.integers(64, min(160, hi - lo, h) + 1))
                top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(lo, hi - side + 1))
                crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), Image.BILINEAR)
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                crop.save(folder / f"{i:03d}.jpg", quality=90) if i % 2 else crop.save(folder / f"{i:03d}.png")
    return root


def score_from_manifest(export: Path, val: Path) -> dict[str, float]:
    """Accuracy of every ONNX file in the export on val/, each image prepared from manifest.json alone:
    RGB, resized to the input size (stretch, or shorter side then centre crop), /255, (x - mean) / std."""
    m = json.loads((export / "manifest.json").read_text())
    c, h, w = m["input_shape"]
    mean, std = np.array(m["mean"], np.float32)[:, None, None], np.array(m["std"], np.float32)[:, None, None]
    files = sorted(p for p in val.rglob("*") if p.suffix in (".jpg", ".png"))
    x = []
    for f in files:
        img = Image.open(f).convert(m["preprocessing"]["mode"])
        if m["preprocessing"]["resize"] == "center-crop":
            s = max(w / img.width, h / img.height)
            img = img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR)
            left, top = (img.width - w) // 2, (img.height - h) // 2
            img = img.crop((left, top, left + w, top + h))
        a = np.asarray(img.resize((w, h), Image.BILINEAR), np.float32).reshape(h, w, c).transpose(2, 0, 1) / 255
        x.append((a - mean) / std)
    y = np.array([m["classes"].index(f.parent.name) for f in files])
    out = {}
    for entry in m["models"]:
        if entry["file"].endswith(".onnx"):
            session = ort.InferenceSession(str(export / entry["file"]), providers=["CPUExecutionProvider"])
            logits = session.run(None, {session.get_inputs()[0].name: np.stack(x).astype(np.float32)})[0]
            out[entry["precision"]] = float((logits.argmax(1) == y).mean())
    return out


def edgeguard(*args: str) -> float:
    """Run `edgeguard ARGS` as a user does (a fresh process, one torch thread); return its wall seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from edgeguard.cli import main; main()", *args], env=env, check=True)
    return time.perf_counter() - start


def train_command(model: str, data: Path, runs: Path, schedule: list[str], name: str, method: str, teacher: Path | None = None) -> list[str]:
    """`edgeguard train` on a photo folder at 64 px, as the docs' flow runs it."""
    extra = ["--teacher", str(teacher)] if teacher else []
    return [
        "train", "--dataset", "imagefolder", "--data-dir", str(data), "--model", model, "--image-size", "64",
        "--method", method, *schedule, *extra, "--runs-dir", str(runs), "--name", name,
    ]  # fmt: skip


def save_torchvision_teacher(run: Path, out: Path) -> dict:
    """A run's fp32 teacher saved as a torchvision user holds it (torchvision's key names); returns the run's state."""
    import torch

    state = torch.load(run / "teacher.pt", weights_only=True)
    torch.save({k.removeprefix("net."): v for k, v in state.items()}, out)
    return state


def flow(model: str, data: Path, tmp: Path, schedule: list[str], name: str, method: str, teacher: Path | None = None) -> dict:
    """train -> export --int8 and --fp32 -> the independent score, the int8 file's contents, the run's own metrics."""
    runs, export = tmp / "runs", tmp / "export"
    train = train_command(model, data, runs, schedule, name, method, teacher)
    seconds = {"train": edgeguard(*train)}
    seconds["export_int8"] = edgeguard("export", "--int8", str(runs / name), "--out", str(export))
    seconds["export_fp32"] = edgeguard("export", "--fp32", str(runs / name), "--out", str(export))
    accuracy = score_from_manifest(export / name, data / "val")
    info = contents(export / name / "model.int8.onnx")
    metrics = json.loads((runs / name / "metrics.json").read_text())
    weights = info["weights"]
    return {
        "command": "edgeguard " + " ".join(train).replace(str(tmp), "<tmp>").replace(str(data), "<data>"),
        "val_accuracy_from_manifest": accuracy,
        "int8_minus_fp32_points": 100 * (accuracy["int8"] - accuracy["fp32"]),
        "int8_weight_share": weights.get("int8", 0) / sum(weights.values()),
        "weights": weights,
        "runtime_ops": info["runtime_ops"],
        "float_kernels": sorted({"Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger"} & set(info["runtime_ops"])),
        "run_metrics": {k: metrics[k] for k in ("teacher_source", "accuracy", "seconds_per_epoch", "params")},
        "seconds": seconds,
    }


def teacher_given(model: str, data: Path, tmp: Path, schedule: list[str], method: str, trained: dict) -> dict:
    """The flow again with --teacher: the first run's fp32 teacher as a torchvision user holds it
    (torchvision's key names); compared with that run (same weights, same fp32 accuracy, less time)."""
    import torch

    state = save_torchvision_teacher(tmp / "runs" / f"byo-{model}", tmp / "teacher.pt")
    given = flow(model, data, tmp, schedule, f"byo-{model}-given", method, teacher=tmp / "teacher.pt")
    given["vs_first_run"] = {
        "teacher_epoch_seconds": given["run_metrics"]["seconds_per_epoch"]["fp32"],
        "teacher_weights_identical": all(torch.equal(state[k], v) for k, v in torch.load(tmp / "runs" / f"byo-{model}-given" / "teacher.pt", weights_only=True).items()),
        "same_fp32_accuracy": given["val_accuracy_from_manifest"]["fp32"] == trained["val_accuracy_from_manifest"]["fp32"],
        "train_seconds_ratio": given["seconds"]["train"] / trained["seconds"]["train"],
    }
    return given


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet18")
    parser.add_argument("--train", type=int, default=100, help="train images per class")
    parser.add_argument("--val", type=int, default=50, help="val images per class")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--qat-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--method", default="divqat", choices=["divqat", "qat"], help="qat: what quantization alone costs, beside DivQAT's")
    parser.add_argument("--divqat", default="", help='DivQAT options passed to train as given, e.g. --divqat="--lam 0.5" (default: none, the defaults)')
    parser.add_argument("--no-teacher-run", action="store_true", help="skip the last flow (the first run's teacher passed back with --teacher)")
    parser.add_argument("--photos", default="report", choices=list(FOLDERS), help="tuning, far-tuning: the folders options are chosen on (default: the report folder, PHOTOS)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    photos = FOLDERS[args.photos]
    schedule = ["--epochs", str(args.epochs), "--qat-epochs", str(args.qat_epochs), "--batch-size", str(args.batch_size), "--threads", "1", *args.divqat.split()]
    result = {
        "data": (
            f"{args.photos} folder: {len(photos)} classes, one per bundled photo {list(photos)}: random square crops resized to 64x64, "
            f"JPEG and PNG; {args.train} train per class (left {VAL_FROM:.0%} of each photo), {args.val} val per class (the rest)"
        ),
        "method": args.method,
        "schedule": schedule,
        "scoring": "numpy + Pillow + onnxruntime from manifest.json alone (benchmarks/byo_models.py: score_from_manifest)",
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = write_photo_folder(tmp / "photos", {"train": args.train, "val": args.val}, 64, seed=0, photos=photos)
        names = args.models.split(",")
        for model in names:
            result["models"][model] = flow(model, data, tmp, schedule, f"byo-{model}", args.method)
            print(json.dumps({model: result["models"][model]}, indent=1), flush=True)

        if not args.no_teacher_run:
            result["teacher_given"] = {names[0]: teacher_given(names[0], data, tmp, schedule, args.method, result["models"][names[0]])}
            print(json.dumps(result["teacher_given"], indent=1))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
