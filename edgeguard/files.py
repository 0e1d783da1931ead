"""Small file helpers shared by both sides (stdlib only).

Writes are atomic: the bytes go to a temporary file in the same folder, are fsynced, then renamed
over the target, so a crash or Ctrl-C never leaves a half-written model or manifest behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgeguard.errors import EdgeguardError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents); fail with a sentence if it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeguardError(f"cannot create output folder '{path}': {e.strerror or e}") from e
    if not os.access(path, os.W_OK):
        raise EdgeguardError(f"output folder '{path}' is not writable; choose another with --out")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)`, then move the finished file onto `path` in one rename."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Load JSON, turning a missing or corrupt file into one clear sentence."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise EdgeguardError(f"{what} '{path}' does not exist") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgeguardError(f"{what} '{path}' is corrupt (not valid JSON): {e}") from e


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
