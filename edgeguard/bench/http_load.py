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


def http_request(path: str, body: bytes, key: str | None, content_length: int | None = None) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {HOST}", "Content-Type: application/json"]
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
        python: tuple[str, ...] = (sys.executable,), env: dict[str, str] | None = None, timeout: float = 60.0, precision: str = "int8",
    ):  # fmt: skip
        self.port = free_port()
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.timeout = timeout
        command = "from edgeguard.cli import main; main()"
        self.args = [
            *python, "-c", command, "serve", str(export), "--keys", str(keys), "--defense", defense,
            "--host", HOST, "--port", str(self.port), "--threads", "1", "--max-batch", str(max_batch), "--precision", precision,
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


def peak_rss_mb(pid: int) -> float:
    """The kernel's peak resident set (VmHWM) of a running process: what serving a model has needed so far."""
    from edgeguard.bench.memory import status_kb

    return round(status_kb("VmHWM", Path(f"/proc/{pid}/status")) / 1024, 1)


async def closed_loop(port: int, raw: bytes, clients: int, requests: int) -> tuple[list[int], list[int], float]:
    """`requests` copies of one request from `clients` keep-alive connections, each sending its next as
    soon as it has an answer; (statuses, round trips in ns, seconds for all)."""
    left = iter(range(requests))
    statuses: list[int] = []
    times: list[int] = []

    async def client() -> None:
        conn = Connection(port)
        for _ in left:  # shared: each request goes to whichever client is free
            start = time.perf_counter_ns()
            status, _ = await conn.send(raw)
            times.append(time.perf_counter_ns() - start)
            statuses.append(status)
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return statuses, times, time.perf_counter() - start


def serve_throughput(export: Path, keys: Path, precision: str, clients: tuple[int, ...] = (1, 8), requests: int = 32) -> dict[str, Any]:
    """`edgeguard serve` (one onnxruntime thread, no defense) answering single-image /predict requests with
    JSON bodies: requests/s and p50/p99 per number of concurrent clients, the server's peak RSS, and
    its overhead over a bare onnxruntime call on the same input (p50 at 1 client - bare p50)."""
    from edgeguard.bench.timing import median_us, percentiles_ms
    from edgeguard.runtime import DeployedModel
    from edgeguard.serve.keys import KeyStore

    model = DeployedModel.load(export, precision, threads=1)
    x = np.random.default_rng(0).random((1, *model.input_shape), dtype=np.float32)
    key = KeyStore(keys, create=True).add(f"throughput-{precision}")  # no budget, no rate limit: measure the server
    raw = http_request("/predict", predict_body(x[0]), key)
    normalised = model.normalise(x)
    out: dict[str, Any] = {"precision": precision, "file": model.entry.file, "body_bytes": len(raw), "by_clients": {}}
    with Server(export, keys, "none", 1, precision=precision) as server:
        run_async(closed_loop(server.port, raw, 1, 3))  # warm-up: the first requests load caches and the session's arena
        for n in clients:
            statuses, times, seconds = run_async(closed_loop(server.port, raw, n, max(requests, 2 * n)))
            if set(statuses) != {200}:
                raise EdgeguardError(f"the server answered {sorted(set(statuses))} to valid requests")
            out["by_clients"][str(n)] = {"requests": len(times), "requests_per_s": round(len(times) / seconds, 2), **percentiles_ms(times)}
        out["server_peak_rss_mb"] = peak_rss_mb(server.proc.pid)
    bare_ms = median_us(lambda: model.backend.logits(normalised), max(5, requests // 2), 2) / 1e3
    out["bare_onnxruntime_p50_ms"] = round(bare_ms, 3)
    out["server_overhead_p50_ms"] = round(out["by_clients"][str(clients[0])]["p50_ms"] - bare_ms, 3)
    return out
