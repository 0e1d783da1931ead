"""`edgeguard predict`: the top classes of image files, from an export folder or a running server.

    from edgeguard.predict import predict_files
    predict_files("export/digits-small-cnn-qat-x86-s0", ["photos/"])            # local runtime, no server
    predict_files("http://127.0.0.1:8000", ["cat.jpg"], api_key=key)            # edgeguard serve

Either way the file is decoded by the model's `ImageSpec` (here, or on the server), so the same file
gets the same answer, up to the server's defense stack and output form. A file that cannot be read
becomes an error in its own row and the others go on; a refused key stops everything. The result
is data (a dict); `render` makes the terminal's lines of it.

Device side: numpy, onnxruntime, Pillow, httpx, never torch.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgeguard.client import Client, KeyRefused, Prediction, Refused
from edgeguard.errors import EdgeguardError
from edgeguard.formats import DEFAULT
from edgeguard.runtime import DeployedModel
from edgeguard.runtime.preprocess import ImageError

BATCH = 32  # files decoded and run through a local model at once


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, and the image files of folders (by suffix, recursively, sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and (mimetypes.guess_type(p.name)[0] or "").startswith("image/"))
        else:
            files.append(path)
    if not files:
        raise EdgeguardError(f"no image files in {', '.join(map(str, paths))} (looked for .jpg, .png, .webp, .bmp, .gif, ... recursively)")
    return files


def row(file: Path, top: list[tuple[str, float | None]]) -> dict[str, Any]:
    return {"file": str(file), "top": [{"label": label, "probability": p} for label, p in top]}


def predict_files(
    target: str, paths: Sequence[str | Path], api_key: str | None = None, top_k: int = 3,
    precision: str = "int8", format: str = DEFAULT, progress: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """{"target", "model", "files": [{"file", "top": [{"label", "probability"}]} or {"file", "error"}]}."""
    files = image_files(paths)
    if progress:
        from tqdm import tqdm

        files = tqdm(files, unit="image", leave=False, disable=None)  # None: no bar when stderr is not a terminal
    if not target.startswith(("http://", "https://")):
        model = DeployedModel.load(target, precision=precision, format=format)
        return {"target": target, "model": model.manifest.name, "files": list(_local(model, files, top_k))}
    if not api_key:
        raise EdgeguardError("a server needs an API key: pass --api-key or set $EDGEGUARD_API_KEY")
    with Client(target, api_key) as client:
        classes = client.metadata()["classes"]
        rows = []
        for file in files:  # one request per file: a bad file is refused alone, and named
            try:
                rows.append(row(file, client.predict(file).top(classes, top_k)[0]))
            except KeyRefused:
                raise
            except Refused as e:
                if e.status not in (400, 413, 415):  # the file's fault; anything else stops the run
                    raise
                rows.append({"file": str(file), "error": e.server_message})
        return {"target": target, "model": client.model, "files": rows}


def _local(model: DeployedModel, files: Iterable[Path], top_k: int) -> Iterable[dict[str, Any]]:
    """Decode each file, run the model on BATCH decoded files at once, in the files' order."""
    classes, pending = model.manifest.classes, []  # (file, decoded array or the reason it is not)

    def flush() -> Iterable[dict[str, Any]]:
        decoded = [x for _, x in pending if not isinstance(x, str)]
        tops = iter(Prediction({"probabilities": model.predict(np.stack(decoded))}).top(classes, top_k) if decoded else [])
        for f, x in pending:
            yield {"file": str(f), "error": x} if isinstance(x, str) else row(f, next(tops))
        pending.clear()

    for file in files:
        try:
            pending.append((file, model.image_spec.load(file)))
        except ImageError as e:
            pending.append((file, str(e)))
        if len(pending) == BATCH:
            yield from flush()
    yield from flush()


def render(result: dict[str, Any]) -> str:
    """One line per file: `path: label 0.82, label 0.10, ...` or `path: error: why`."""
    lines = []
    for r in result["files"]:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
        else:
            lines.append(f"{r['file']}: " + ", ".join(t["label"] if t["probability"] is None else f"{t['label']} {t['probability']:.3f}" for t in r["top"]))
    return "\n".join(lines)
