"""A resumable results store: one JSON line per finished cell, appended and fsynced.

A crashed or interrupted grid loses at most the cell it was computing; a rerun skips every cell
whose key is already stored. A torn last line (crash mid-write) is ignored, never fatal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from edgeguard.files import atomic_write


class CellStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        torn = False
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    self.rows.append(json.loads(line))
                except json.JSONDecodeError:
                    torn = True  # a line torn by a crash: its cell is recomputed
        if torn:  # drop it, or the next append would be glued onto it
            atomic_write(self.path, lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in self.rows)))
        self.done = {r["key"] for r in self.rows}

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        with open(self.path, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
                self.rows.append(row)
                self.done.add(row["key"])
            f.flush()
            os.fsync(f.fileno())
