"""`edgeguard predict` against an export folder and against a running server: the same top classes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeguard.cli import main
from edgeguard.runtime import DeployedModel


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of images, one in a subfolder, one broken, one not an image at all."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), "RGB").save(folder / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L").save(folder / "sub" / "b.png")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buffer, "JPEG")
    (folder / "broken.jpg").write_bytes(buffer.getvalue()[:100])
    (folder / "notes.txt").write_text("not an image: skipped")
    return folder


def expected_top(export: Path, path: Path, k: int) -> list[dict]:
    model = DeployedModel.load(export)
    p = model.predict(model.image_spec.load(path)[None])[0]
    return [{"label": model.manifest.classes[i], "probability": float(p[i])} for i in np.argsort(-p, kind="stable")[:k]]


def test_predict_a_folder_with_the_local_runtime(export, photos):
    r = CliRunner().invoke(main, ["predict", str(export), str(photos), "--json", "--top-k", "2"])
    assert r.exit_code == 1 and "1 of 3 files could not be read" in r.output
    result = json.loads(r.output[: r.output.rindex("}") + 1])
    rows = {Path(row["file"]).name: row for row in result["files"]}
    assert list(rows) == ["a.jpg", "broken.jpg", "b.png"]  # sorted, recursive, no notes.txt
    assert rows["a.jpg"]["top"] == expected_top(export, photos / "a.jpg", 2)
    assert rows["b.png"]["top"] == expected_top(export, photos / "sub" / "b.png", 2)
    assert "truncated" in rows["broken.jpg"]["error"] or "not an image" in rows["broken.jpg"]["error"]
    r = CliRunner().invoke(main, ["predict", str(export), str(photos / "a.jpg")])
    top = expected_top(export, photos / "a.jpg", 3)
    assert r.exit_code == 0 and r.output.strip() == f"{photos / 'a.jpg'}: " + ", ".join(f"{t['label']} {t['probability']:.3f}" for t in top)


def test_predict_against_a_server_gives_the_local_answer(export, photos, serve, keys):
    key = keys.add("cli")
    url = serve()
    args = ["predict", url, str(photos / "a.jpg"), str(photos / "sub" / "b.png"), str(photos / "broken.jpg"), "--json"]
    r = CliRunner().invoke(main, args, env={"EDGEGUARD_API_KEY": key})
    assert r.exit_code == 1, r.output
    rows = json.loads(r.output[: r.output.rindex("}") + 1])["files"]
    assert rows[0]["top"] == expected_top(export, photos / "a.jpg", 3) and rows[1]["top"] == expected_top(export, photos / "sub" / "b.png", 3)
    assert "file 1 ('broken.jpg')" in rows[2]["error"]
    assert keys.used("cli") == 2  # the broken file cost nothing
    r = CliRunner().invoke(main, args[:3], env={"EDGEGUARD_API_KEY": ""})
    assert r.exit_code == 1 and "needs an API key" in r.output
    r = CliRunner().invoke(main, [*args[:3], "--api-key", "eg_wrong"])
    assert r.exit_code == 1 and "does not accept this API key" in r.output
