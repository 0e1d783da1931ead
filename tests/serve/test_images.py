"""Image files on the wire: raw bodies, multipart, v2 BYTES; the same decode as the training side; bad files never cost a 5xx nor budget."""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from edgeguard.defenses import parse_stack
from edgeguard.runtime import DeployedModel
from edgeguard.serve import KeyStore

from .conftest import STACK


@pytest.fixture(scope="module")
def local(export: Path) -> DeployedModel:
    return DeployedModel.load(export)


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def photo(seed: int = 0, size: tuple[int, int] = (48, 64)) -> Image.Image:
    """A smooth RGB picture with a bright stroke (JPEG-friendly, unlike uniform noise)."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a = np.stack([np.sin(xx * rng.uniform(2, 9)), np.cos(yy * rng.uniform(2, 9)), xx * yy], axis=-1)
    a = (a - a.min()) / (np.ptp(a) + 1e-9) * 180
    a[h // 4 : 3 * h // 4, w // 2 - 3 : w // 2 + 3] = 255
    return Image.fromarray(a.astype(np.uint8), "RGB")


def good_files() -> dict[str, bytes]:
    """Every kind of file the server must answer, and convert as the training side does."""
    rotated = photo(1)
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees on display
    frames = [photo(2).convert("P"), photo(3).convert("P")]
    palette = photo(4).convert("P")
    palette.info["transparency"] = 0
    return {
        "rgb.jpg": encoded(photo(0), "JPEG", quality=90),
        "grey.png": encoded(photo(5).convert("L"), "PNG"),
        "photo.webp": encoded(photo(6), "WEBP"),
        "photo.bmp": encoded(photo(7), "BMP"),
        "animated.gif": encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "exif-rotated.jpg": encoded(rotated, "JPEG", exif=exif),
        "cmyk.jpg": encoded(photo(8).convert("CMYK"), "JPEG"),
        "palette-alpha.png": encoded(palette, "PNG"),
        "rgba.png": encoded(photo(9).convert("RGBA"), "PNG"),
        "sixteen-bit.png": encoded(Image.fromarray((np.asarray(photo(10).convert("L"), np.uint16) * 257)), "PNG"),
    }


CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".bmp": "image/bmp", ".gif": "image/gif"}


def content_type(name: str) -> str:
    return CONTENT_TYPES[Path(name).suffix]


def test_every_route_answers_files_as_the_local_model_answers_their_decode(serve, keys, local):
    key = keys.add("alice")
    url = serve(defense=STACK)
    files = good_files()
    x = np.stack([local.image_spec.load(data) for data in files.values()])  # the one decode
    expected = parse_stack(STACK)(local.predict(x), x)
    headers = {"X-API-Key": key}
    for i, (name, data) in enumerate(files.items()):  # raw body, one file each
        r = httpx.post(f"{url}/predict", content=data, headers={**headers, "Content-Type": content_type(name)})
        assert r.status_code == 200 and r.json()["probabilities"] == expected[i : i + 1].tolist(), name
    r = httpx.post(f"{url}/predict", files=[("file", (n, d, content_type(n))) for n, d in files.items()], headers=headers)
    assert r.status_code == 200 and r.json()["probabilities"] == expected.tolist()  # one batch, in order
    assert r.json()["labels"] == [local.manifest.classes[i] for i in expected.argmax(axis=1)]
    tensor = {"name": "input", "shape": [len(files)], "datatype": "BYTES", "data": [base64.b64encode(d).decode() for d in files.values()]}
    r = httpx.post(f"{url}/v2/models/{local.manifest.name}/infer", json={"inputs": [tensor]}, headers=headers)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == expected.ravel().tolist()
    assert keys.used("alice") == 3 * len(files)


def test_server_decode_equals_the_training_sides_within_one_int8_step(serve, keys, local, tmp_path, torch_threads):
    """The training side reads files with the same ImageSpec and normalises with train.run.tensors."""
    from edgeguard.data.base import Split
    from edgeguard.runtime.preprocess import ImageSpec, Normaliser
    from edgeguard.train.run import tensors

    paths = []
    for name, data in good_files().items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    manifest = local.manifest
    training_spec = ImageSpec.from_manifest(manifest.preprocessing, manifest.input_shape)  # as the training side builds it
    x_train = np.stack([training_spec.load(p) for p in paths])
    x_served_decode = np.stack([local.image_spec.load(p.read_bytes()) for p in paths])
    np.testing.assert_array_equal(x_served_decode, x_train)  # the same pixels, bit for bit
    normalised_train = tensors(Split(x_train, np.zeros(len(paths), np.int64)), Normaliser(manifest.mean, manifest.std))[0].numpy()
    step = 1 / (255 * min(manifest.std))  # one step of the model's uint8 input quantisation, in normalised units
    assert np.abs(normalised_train - local.normalise(x_served_decode)).max() <= step
    url = serve()
    r = httpx.post(f"{url}/predict", files=[("file", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths], headers={"X-API-Key": keys.add("a")})
    assert r.json()["probabilities"] == local.predict(x_train).tolist()  # the served answer is the model on that decode


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def bad_requests(name: str) -> list[tuple[str, dict, int, str]]:
    """(kind, httpx request arguments, status, words of the error): at least 12 kinds of bad image."""
    jpeg = encoded(photo(0, (96, 128)), "JPEG")
    png = encoded(photo(1), "PNG")
    good = ("ok.jpg", jpeg, "image/jpeg")

    def raw(data: bytes, ctype: str) -> dict:
        return {"content": data, "headers": {"Content-Type": ctype}}

    def parts(*files: tuple[str, bytes, str]) -> dict:
        return {"files": [("file", f) for f in files]}

    def multipart(body: bytes, boundary: str | None = "b0undary") -> dict:
        return raw(body, "multipart/form-data" + (f"; boundary={boundary}" if boundary else ""))

    def v2(data: list, shape: list) -> dict:
        return {"json": {"inputs": [{"name": "input", "shape": shape, "datatype": "BYTES", "data": data}]}, "path": f"/v2/models/{name}/infer"}

    corrupt_header = bytearray(jpeg)
    corrupt_header[2:60] = bytes(58)
    broken_crc = bytearray(png)
    broken_crc[29] ^= 0xFF
    return [
        ("truncated jpeg", raw(jpeg[: len(jpeg) * 2 // 3], "image/jpeg"), 400, "truncated or corrupt"),
        ("truncated png", raw(png[: len(png) // 2], "image/png"), 400, "the body"),
        ("corrupt jpeg header", raw(bytes(corrupt_header), "image/jpeg"), 400, "not an image"),
        ("png with a broken checksum", raw(bytes(broken_crc), "image/png"), 400, "not an image"),
        ("text as image/png", raw(b"hello, this is not a picture", "image/png"), 400, "not an image"),
        ("json as image/jpeg", raw(b'{"inputs": [[0.5]]}', "image/jpeg"), 400, "not an image"),
        ("empty image body", raw(b"", "image/webp"), 400, "not an image"),
        ("tiff as image/png", raw(encoded(photo(2), "TIFF"), "image/png"), 415, "TIFF images are not accepted"),
        ("image/tiff content type", raw(jpeg, "image/tiff"), 415, "not an image type this server decodes"),
        ("eps in multipart (no Ghostscript)", parts(("x.eps", encoded(photo(3), "EPS"), "application/postscript")), 415, "EPS images"),
        ("0-pixel png", raw(png_header(0, 16), "image/png"), 400, "not an image"),
        ("decompression bomb", raw(encoded(Image.new("L", (5000, 5000)), "PNG"), "image/png"), 413, "25,000,000 pixels"),
        ("header bomb", parts(("bomb.png", png_header(100_000, 100_000), "image/png")), 413, "too large to decode"),
        ("one bad file in a batch", parts(good, ("bad.jpg", jpeg[:300], "image/jpeg")), 400, "file 2 ('bad.jpg')"),
        ("part not named file", multipart(b'--b0undary\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + jpeg + b"\r\n--b0undary--\r\n"), 400, "named 'file'"),
        ("multipart cut short", multipart(b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n' + jpeg[:500]), 400, "cut short"),
        ("multipart without boundary", multipart(b"--x\r\n", None), 400, "needs a boundary"),
        ("multipart without parts", multipart(b"--b0undary--\r\n"), 400, "holds no image file"),
        ("too many files", parts(*[good] * 65), 400, "at most 64 items"),
        ("v2 bytes not base64", v2(["###"], [1]), 400, "not valid base64"),
        ("v2 bytes wrong shape", v2([base64.b64encode(jpeg).decode()], [2]), 400, "shape must be [n]"),
        ("v2 bytes of text", v2([base64.b64encode(b"text").decode()], [1]), 400, "file 1: the data is not an image"),
    ]


def mutated(rng: np.random.Generator, seeds: list[bytes]) -> bytes:
    """A JPEG or PNG damaged the ways files get damaged: bytes flipped, cut, spliced, zeroed, repeated."""
    data = bytearray(seeds[rng.integers(len(seeds))])
    for _ in range(rng.integers(1, 4)):
        i = int(rng.integers(len(data)))
        kind = rng.integers(5)
        if kind == 0:
            for j in rng.integers(0, len(data), rng.integers(1, 16)):
                data[j] = int(rng.integers(256))
        elif kind == 1:
            data = data[: max(1, i)]
        elif kind == 2:
            data[i:i] = rng.integers(0, 256, rng.integers(1, 64)).astype(np.uint8).tobytes()
        elif kind == 3:
            data[i : i + int(rng.integers(1, 64))] = bytes(int(rng.integers(1, 64)))
        else:
            data[i:i] = data[max(0, i - 200) : i]
    return bytes(data)


def test_bad_images_and_500_mutated_files_never_cost_a_5xx_nor_budget(server_process, tmp_path, local):
    db = tmp_path / "keys.db"
    key = KeyStore(db, create=True).add("fuzz")
    server = server_process(db)  # a real `edgeguard serve`: a crash in a decoder would end its process
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        for kind, request, status, words in bad_requests(local.manifest.name):
            path = request.pop("path", "/predict")
            r = client.post(path, **request)
            assert r.status_code == status and words in r.json()["error"], (kind, r.status_code, r.text)
        assert KeyStore(db).record_named("fuzz").used == 0  # refused requests cost nothing
        rng = np.random.default_rng(17)
        seeds = [encoded(photo(i, (40, 56)), fmt) for i, fmt in enumerate(("JPEG", "PNG", "JPEG", "PNG"))]
        seeds.append(encoded(photo(9).convert("L"), "PNG"))
        statuses = {}
        for i in range(500):
            body = mutated(rng, seeds)
            ctype = "image/png" if body[:4] == b"\x89PNG" else "image/jpeg"
            r = client.post("/predict", content=body, headers={"Content-Type": ctype}) if i % 2 else client.post("/predict", files=[("file", ("m", body, ctype))])
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code in (200, 400, 413, 415), (i, r.status_code, r.text)
        answered = statuses.get(200, 0)
        assert 0 < answered < 500 and KeyStore(db).record_named("fuzz").used == answered  # charged for answers only
        assert server.proc.poll() is None
        r = client.post("/predict", content=seeds[0], headers={"Content-Type": "image/jpeg"})  # business as usual
        assert r.status_code == 200 and r.json()["probabilities"] == local.predict(local.image_spec.load(seeds[0])[None]).tolist()
        assert 'status="5' not in client.get("/metrics").text


def test_budgets_are_charged_per_answered_image(serve, keys, local):
    key = keys.add("bob", budget=5)
    slow = keys.add("slow", rate=1, burst=2)
    url = serve()
    files = list(good_files().values())

    def send(k: str, *batch: bytes) -> int:
        return httpx.post(f"{url}/predict", files=[("file", ("f", f, "application/octet-stream")) for f in batch], headers={"X-API-Key": k}).status_code

    assert send(key, *files[:3]) == 200 and keys.used("bob") == 3
    assert send(key, files[0], b"garbage") == 400 and keys.used("bob") == 3  # refused whole, charged nothing
    assert send(key, *files[:3]) == 403 and keys.used("bob") == 3  # 2 left: the batch does not fit
    assert send(key, *files[:2]) == 200 and keys.used("bob") == 5
    assert send(slow, *files[:2]) == 200 and send(slow, files[0]) == 429 and keys.used("slow") == 2
    # decoding comes before the store's one atomic rate-limit-and-charge step: a bad file is a 400
    # even past the rate, and costs nothing
    assert send(slow, b"garbage") == 400 and keys.used("slow") == 2


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_the_label_of_the_python_runtime(server_process, tmp_path, local):
    db = tmp_path / "keys.db"
    key = KeyStore(db, create=True).add("curl")
    server = server_process(db, "--output", "label")
    files, want = good_files(), {}
    for name in ("rgb.jpg", "grey.png"):
        (tmp_path / name).write_bytes(files[name])
        want[name] = local.manifest.classes[int(local.predict(local.image_spec.load(tmp_path / name)[None]).argmax())]

    def curl(*args: str) -> dict:
        run = subprocess.run(["curl", "-sS", "-H", f"X-API-Key: {key}", *args, f"{server.url}/predict"], capture_output=True, text=True, timeout=30, check=True)
        return json.loads(run.stdout)

    assert curl("-F", f"file=@{tmp_path / 'rgb.jpg'}")["labels"] == [want["rgb.jpg"]]
    assert curl("--data-binary", f"@{tmp_path / 'grey.png'}", "-H", "Content-Type: image/png")["labels"] == [want["grey.png"]]
    both = curl("-F", f"file=@{tmp_path / 'rgb.jpg'}", "-F", f"file=@{tmp_path / 'grey.png'}")
    assert both["labels"] == [want["rgb.jpg"], want["grey.png"]] and len(both["label"]) == 2


def test_mutated_multipart_envelopes_are_refused_in_a_sentence(local):
    """The multipart parser, in-process: a damaged envelope is a ClientError, never another exception."""
    from edgeguard.serve.protocol import ClientError, ImageFiles, InputSpec, decode, parse_predict

    spec = InputSpec(local.input_shape, 64)
    request = httpx.Request("POST", "http://edge/predict", files=[("file", ("a.png", encoded(photo(0, (20, 30)), "PNG"), "image/png"))] * 2)
    body, ctype = request.read(), request.headers["content-type"]
    rng, statuses = np.random.default_rng(5), set()
    for _ in range(500):
        try:
            batch = parse_predict(mutated(rng, [body]), spec, ctype)
            if isinstance(batch, ImageFiles):
                decode(batch, local.image_spec)
            statuses.add(200)
        except ClientError as e:
            statuses.add(e.status)
    assert statuses <= {200, 400, 413, 415} and 400 in statuses
