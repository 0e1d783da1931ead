"""A minimal HTTP/1.1 load generator for `edgeguard serve` on loopback, and the server in a subprocess.

The client is a keep-alive connection on asyncio streams (uvloop when installed), so that on a
2-core machine the load generator costs less CPU than the server it measures. Used by
benchmarks/load_test.py, benchmarks/detection.py and the aarch64 emulation check. Only HOST is
ever contacted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from edgeguard.errors import EdgeguardError

HOST = "127.0.0.1"


def http_request(path: str, body: bytes, key: str | None, content_length: int | None = None, content_type: str = "application/json") -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {HOST}", f"Content-Type: {content_type}"]
    if key:
        head.append(f"X-API-Key: {key}")
    head.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def predict_body(x: np.ndarray) -> bytes:
    return orjson.dumps({"inputs": x.tolist()})


def infer_body(x: np.ndarray, name: str = "input") -> bytes:
    tensor = {"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    return orjson.dumps({"inputs": [tensor]})


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it (after a 413)."""

    def __init__(self, port: int):
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self.streams
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        headers = dict(
            line.split(b":", 1) for line in head.lower().split(b"\r\n")[1:] if b":" in line
        )
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").strip() == b"close":
            self.close()
        return int(head[9:12]), body

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def drive(port: int, plan: list[int], raws: list[bytes], clients: int, deadline: float) -> tuple[list[tuple[int, int, bytes, int]], float]:
    """Send raws[plan[i]] for every i from `clients` connections; returns (index, status, body, ns) and seconds."""
    results: list[tuple[int, int, bytes, int]] = []
    queue = iter(plan)

    async def client() -> None:
        conn = Connection(port)
        for index in queue:  # a shared iterator: each request goes to whichever client is free
            if time.monotonic() > deadline:
                break
            start = time.perf_counter_ns()
            status, body = await conn.send(raws[index])
            results.append((index, status, body, time.perf_counter_ns() - start))
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return results, time.perf_counter() - start


def percentiles_us(ns: list[int]) -> dict[str, float]:
    q = np.percentile(np.asarray(ns, np.float64) / 1e3, [50, 99])
    return {"p50_us": round(float(q[0]), 1), "p99_us": round(float(q[1]), 1)}


def run_async(coro: Any) -> Any:
    """uvloop when installed (as on the server): the client's own cost is part of every round trip."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """`edgeguard serve` in a subprocess, stopped (SIGTERM, then SIGKILL) when the block ends.

    `python` is the interpreter command (aarch64 under qemu: the emulator, its options and the guest
    python), `env` what it needs beyond this process's environment, `timeout` how long start-up may take.
    """

    def __init__(
        self, export: Path, keys: Path, defense: str, max_batch: int,
        python: tuple[str, ...] = (sys.executable,), env: dict[str, str] | None = None, timeout: float = 60.0,
    ):  # fmt: skip
        self.port = free_port()
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.timeout = timeout
        command = "from edgeguard.cli import main; main()"
        self.args = [
            *python, "-c", command, "serve", str(export), "--keys", str(keys), "--defense", defense,
            "--host", HOST, "--port", str(self.port), "--threads", "1", "--max-batch", str(max_batch),
        ]

    def __enter__(self) -> "Server":
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgeguardError(f"the server exited at start-up: {self.proc.stdout.read().strip()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise EdgeguardError(f"the server did not start listening within {self.timeout:.0f} s")

    def __exit__(self, *exc: Any) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
