"""Loopback tools for measuring and testing `edgeguard serve`: its process, a throwaway Redis, a client.

    with RedisServer(tmp / "redis") as redis, Server(export, redis.url, "none", 64) as server:
        results, seconds = run_async(drive(server.port, [0] * 1000, [http_request("/predict", body, key)], 1, deadline))

The client is a minimal HTTP/1.1 keep-alive connection on asyncio streams (uvloop when installed),
so that on a 2-core machine the load generator costs less CPU than the server it measures. Used by
benchmarks/ (load_test, detection, keystore, the aarch64 check) and the serve tests. Only HOST is
ever contacted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
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


def load_summary(results: list[tuple[int, int, bytes, int]], seconds: float, clients: int) -> dict[str, Any]:
    """A load phase (`drive`'s results and seconds) in numbers: requests, clients, seconds, requests/s, p50 / p99."""
    n = len(results)
    return {"requests": n, "clients": clients, "seconds": round(seconds, 3), "requests_per_s": round(n / seconds, 1), **percentiles_us([r[3] for r in results])}


async def alternate(ports: list[int], raws: list[bytes], rounds: int) -> list[list[tuple[int, bytes, int]]]:
    """Send raws[j] to ports[j] for each j in turn, `rounds` times (which goes first alternates)."""
    conns = [Connection(port) for port in ports]
    results: list[list[tuple[int, bytes, int]]] = [[] for _ in ports]
    for i in range(rounds):
        for j in range(len(ports)) if i % 2 == 0 else reversed(range(len(ports))):
            start = time.perf_counter_ns()
            status, body = await conns[j].send(raws[j])
            results[j].append((status, body, time.perf_counter_ns() - start))
    for conn in conns:
        conn.close()
    return results


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
    """`edgeguard serve` in a subprocess (the real CLI) on a free loopback port, stopped (SIGTERM, then
    SIGKILL) when the block ends.

    `keys` is what `--keys` takes (a SQLite file or a redis:// URL); `options` are further `serve`
    options (a later one wins over the defaults here). `python` is the interpreter command (aarch64
    under qemu: the emulator, its options and the guest python), `env` what it needs beyond this
    process's environment, `timeout` how long start-up may take.
    """

    def __init__(
        self, export: Path, keys: str | Path, *options: str, defense: str = "none", max_batch: int = 64, precision: str = "int8",
        python: tuple[str, ...] = (sys.executable,), env: dict[str, str] | None = None, timeout: float = 60.0,
    ):  # fmt: skip
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.timeout = timeout
        command = "from edgeguard.cli import main; main()"
        self.args = [
            *python, "-c", command, "serve", str(export), "--keys", str(keys), "--defense", defense,
            "--host", HOST, "--port", str(self.port), "--threads", "1", "--max-batch", str(max_batch), "--precision", precision, *options,
        ]  # fmt: skip

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

    def kill9(self) -> None:
        """A crash: no shutdown, no checkpoint."""
        self.proc.kill()
        self.proc.wait(10)

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()  # a no-op on a process already gone
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill9()
        self.proc.stdout.close()


def paired_difference_us(first: list[int], second: list[int]) -> float:
    """Median over pairs of second - first (ns in, us out): what one side adds, with the noise paired away."""
    return statistics.median(b - a for a, b in zip(first, second)) / 1e3


class RedisServer:
    """A redis-server of its own on 127.0.0.1 and a free port, its data in `folder`: an append-only
    file fsynced every second (Redis's default policy), no snapshots. `stop` then `start` again
    reloads the file, as a restarted Redis would. `password` and `tls` (a certificate and its key,
    which the client trusts as its CA) are the settings of a Redis reached over a network.
    """

    def __init__(self, folder: Path, password: str | None = None, tls: tuple[Path, Path] | None = None):
        if shutil.which("redis-server") is None:
            raise EdgeguardError("redis-server is not installed (Debian: apt-get install redis-server)")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.password, self.tls = folder, password, tls
        self.port = free_port()
        auth = f":{password}@" if password else ""
        self.url = f"rediss://{auth}{HOST}:{self.port}/0?ssl_ca_certs={tls[0]}" if tls else f"redis://{auth}{HOST}:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "RedisServer":
        listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls[0]), "--tls-key-file", str(self.tls[1]),
                  "--tls-ca-cert-file", str(self.tls[0]), "--tls-auth-clients", "no"] if self.tls else ["--port", str(self.port)]  # fmt: skip
        args = [
            "redis-server", "--bind", HOST, *listen, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
            "--dir", str(self.folder), "--logfile", "redis.log", "--io-threads", "1",
            *(["--requirepass", self.password] if self.password else []),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._accepting():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(kill=True)
                raise EdgeguardError(f"redis-server did not start on port {self.port}; see {self.folder / 'redis.log'}")
            time.sleep(0.02)
        return self

    def _accepting(self) -> bool:
        """Whether the port is open (a TLS port cannot be asked more without a handshake), and a
        plain one no longer answers LOADING while it reads its append-only file."""
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                if self.tls:
                    return True
                s.sendall(b"PING\r\n")
                return not s.recv(64).startswith(b"-LOADING")
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (Redis flushes its file and exits) or SIGKILL (a crash: it has no say)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def peak_rss_mb(pid: int) -> float:
    """The kernel's peak resident set (VmHWM) of a running process: what serving a model has needed so far."""
    from edgeguard.bench.memory import status_kb

    return round(status_kb("VmHWM", Path(f"/proc/{pid}/status")) / 1024, 1)


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
    raws = [http_request("/predict", predict_body(x[0]), key)]
    normalised = model.normalise(x)
    out: dict[str, Any] = {"precision": precision, "file": model.entry.file, "body_bytes": len(raws[0]), "by_clients": {}}
    with Server(export, keys, max_batch=1, precision=precision) as server:
        run_async(drive(server.port, [0] * 3, raws, 1, float("inf")))  # warm-up: the first requests load caches and the session's arena
        for n in clients:
            results, seconds = run_async(drive(server.port, [0] * max(requests, 2 * n), raws, n, float("inf")))
            if {status for _, status, _, _ in results} != {200}:
                raise EdgeguardError(f"the server answered {sorted({status for _, status, _, _ in results})} to valid requests")
            times = [ns for *_, ns in results]
            out["by_clients"][str(n)] = {"requests": len(times), "requests_per_s": round(len(times) / seconds, 2), **percentiles_ms(times)}
        out["server_peak_rss_mb"] = peak_rss_mb(server.proc.pid)
    bare_ms = median_us(lambda: model.backend.logits(normalised), max(5, requests // 2), 2) / 1e3
    out["bare_onnxruntime_p50_ms"] = round(bare_ms, 3)
    out["server_overhead_p50_ms"] = round(out["by_clients"][str(clients[0])]["p50_ms"] - bare_ms, 3)
    return out
