"""Is the int8 model the one QAT trained? Each run's converted int8 model against its fake-quantized self.

    python benchmarks/int8_fidelity.py --runs runs/digits-small-cnn-qat-s0 runs/digits-small-cnn-divqat-s0

Per run (its own data, decoded as for training): top-1 agreement and mean |logit difference| between
torch's int8 model (`Run.int8`, what `edgeguard export` writes) and the fake-quantized model, on the
test split and on 1,000 natural patches (a Knockoff thief's queries, `query_set("natural")`), the
accuracy of both on the test split, and at the first quantized layer the share of output elements
that differ and by how many quantization steps at most. Runs trained before the weights' fake-quant
fix (docs/getting-started.md, "The int8 scheme") still convert as they did, so the same command
measures the conversion before and after it. Writes --out (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from edgeguard.attacks.sources import query_set
from edgeguard.bench.script import run_script
from edgeguard.train.run import load_run


def first_layer(fake_quant: torch.nn.Module, int8: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """The first layer that has a weight fake-quant: how its int8 output differs, in output steps."""
    name = next(n for n, m in fake_quant.named_modules() if hasattr(m, "weight_fake_quant"))
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        dict(model.named_modules())[name].register_forward_hook(lambda _m, _i, o, key=key: outputs.update({key: o}))  # returns None: output kept
        for key, model in (("fake", fake_quant), ("int8", int8))
    ]
    with torch.no_grad():
        fake_quant(x), int8(x)
    for hook in hooks:
        hook.remove()
    steps = ((outputs["fake"] - outputs["int8"].dequantize()) / outputs["int8"].q_scale()).round().abs()
    return {"layer": name, "elements_differing": float((steps > 0).float().mean()), "max_steps": int(steps.max())}


def measure_run(path: str) -> dict[str, Any]:
    run = load_run(path)
    data = run.dataset()
    mean, std = (torch.tensor(run.metrics[k], dtype=torch.float32).view(1, -1, 1, 1) for k in ("mean", "std"))
    int8 = run.int8()
    row: dict[str, Any] = {"run": str(run.dir)}
    for split, images in (("test", data.test.images(slice(None))), ("natural", query_set("natural", data, 1000, 0))):
        x = (torch.tensor(images) - mean) / std
        with torch.no_grad():
            fake, real = run.qat(x), int8(x)
        row[split] = {"agreement": float((fake.argmax(1) == real.argmax(1)).float().mean()), "mean_abs_logit_diff": float((fake - real).abs().mean())}
        if split == "test":
            y = torch.tensor(data.test.y)
            row[split] |= {"fake_quant_accuracy": float((fake.argmax(1) == y).float().mean()), "int8_accuracy": float((real.argmax(1) == y).float().mean())}
            row["first_layer"] = first_layer(run.qat, int8, x)
    return row


def render(result: dict[str, Any]) -> str:
    lines = ["| run | test: agree / fake-quant acc / int8 acc | natural: agree | mean abs logit diff (test) | first layer: elements differing, max steps |", "|---|---|---|---|---|"]
    for r in result["runs"]:
        t, f = r["test"], r["first_layer"]
        lines.append(
            f"| {r['run']} | {100 * t['agreement']:.1f}% / {100 * t['fake_quant_accuracy']:.1f}% / {100 * t['int8_accuracy']:.1f}% "
            f"| {100 * r['natural']['agreement']:.1f}% | {t['mean_abs_logit_diff']:.4f} | {100 * f['elements_differing']:.1f}%, {f['max_steps']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (edgeguard train's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/int8-fidelity.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return run_script(args, lambda: {"runs": [measure_run(p) for p in args.runs]}, render)


if __name__ == "__main__":
    sys.exit(main())
