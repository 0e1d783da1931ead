"""Run a deployment under uvicorn: one process, one event loop, no access log.

One worker: the key store serialises charges anyway, the model is tiny, and a Raspberry Pi has
four cores to share with everything else; more throughput comes from batching, not processes.
uvicorn picks uvloop and httptools when installed (the `runtime` extra installs them): together
they roughly halve the per-request cost of the pure-Python event loop and HTTP parser.
"""

from __future__ import annotations

from typing import Callable

import uvicorn

from edgeguard.serve.app import create_app
from edgeguard.serve.service import ServeConfig, Service


def summary(service: Service, config: ServeConfig, url: str) -> str:
    """The start-up lines: what is served, how, where, and whether the monitor watches the keys.

    Defense names only: parameters can hold secrets (a noise key) and this line ends up in logs.
    """
    entry = service.predictor.model.entry
    defenses = " | ".join(d.name for d in service.predictor.stack.defenses) or "none"
    active = sum(1 for r in service.store.records() if r.revoked is None)
    where = service.store.location  # never a password
    keys = f"keys: {where} ({active} active)" + ("" if active else f"; add one: edgeguard keys add NAME --db {where}")
    if service.monitor is not None:
        monitor = f"monitor: on (PRADA + OOD share, thresholds from the manifest); on flag: {service.policy.name}"
    else:
        monitor = (
            f"WARNING: monitor off: the manifest has no monitor thresholds for {entry.file} (exported before edgeguard "
            "calibrated them), so no key will be flagged; re-export the run (edgeguard export) to calibrate them"
        )
    return (
        f"serving {service.name} ({entry.precision} {entry.format}, sha256 verified) at {url}\n"
        f"defense: {defenses}; output: {config.output}; max batch {config.max_batch}; {keys}\n{monitor}"
    )


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, echo: Callable[[str], None] = print) -> None:
    """Load and verify everything first (a bad model or spec fails before binding), then serve until stopped."""
    service = Service.load(config)
    echo(summary(service, config, f"http://{host}:{port}"))
    uvicorn.run(
        create_app(service),
        host=host,
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,  # /metrics counts requests; a log line per query would cost more than the query
        server_header=False,
    )
