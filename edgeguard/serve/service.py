"""One deployment's request handling without HTTP: who is asking, may they, what to answer.

The order of the checks is the security argument:
1. the key (401 missing or unknown, 403 revoked, out of budget, or flagged under `--on-flag block`):
   strangers learn nothing else; a key store that cannot be reached refuses everything (503);
2. the request itself (4xx): its size, its form and its item count (image files are counted, not yet
   decoded); a malformed request never reaches the model and costs no budget;
3. image files decoded by the model's `ImageSpec` (400, 413 for a decompression bomb refused from its
   header, 415): before the charge, so a bad file costs nothing and one bad file refuses its batch
   whole. Before the rate limit too, as that and the charge are one atomic step of the key store: a
   key over its rate makes the server decode at most one body (within the body limit) per refusal;
4. and 5., in one atomic step of the key store: the rate limit (429 + Retry-After; a flagged key's is
   SLOW_RATE under `--on-flag slow`), whose refusals take no budget either, then the charge: every
   item of the batch reserved, and committed, before any answer is computed, so a crash can lose an
   answer but never a count: a key pays for exactly the images that were answered. The charge checks
   the key again (revoked, budgets; flagged under `block`) and reports it as it found it: with a
   shared store, step 1 may have read the key's last charge on this server
   (redis_keys.RedisKeyStore.lookup), and what another server changed since takes effect here;
6. the model, the defense stack (then a flagged key's policy stack) and the deployment's output form;
7. after the answer is sent, the monitor (edgeguard.monitor) sees the key's queries and may flag the
   key, which the key store keeps until an operator clears it (`watch`); a flag the store could not
   take is kept and retried before the next key is looked up.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeguard import __version__
from edgeguard.defenses import parse_stack
from edgeguard.formats import DEFAULT, FORMATS
from edgeguard.monitor import Monitor, MonitorConfig
from edgeguard.runtime import DeployedModel
from edgeguard.serve.keys import BaseKeyStore, KeyRecord, KeysUnavailable, utc_day, utc_now
from edgeguard.serve.policy import SLOW_RATE, FlagPolicy
from edgeguard.serve.predictor import Answer, Predictor
from edgeguard.serve.prometheus import Metrics
from edgeguard.serve.protocol import Batch, ClientError, ImageFiles, InputSpec, decode, parse_infer, parse_predict, v2_tensor
from edgeguard.serve.stores import open_store

log = logging.getLogger("edgeguard.serve")


FILES_BODY_BYTES = 32 * 1024 * 1024  # room for a few camera photos, whatever the model's input size


def default_max_body_bytes(input_shape: tuple[int, ...], max_batch: int) -> int:
    """Room for max_batch inputs written with 24 bytes per number (a float32 in full, a comma, a space),
    and at least for FILES_BODY_BYTES of image files (a 28x28 model's JSON room is 1.2 MB: one photo)."""
    return max(max_batch * math.prod(input_shape) * 24 + 4096, FILES_BODY_BYTES)


@dataclass(frozen=True)
class ServeConfig:
    """Everything `edgeguard serve` is told; `max_body_bytes` None: enough for max_batch inputs."""

    folder: str | Path
    keys: str | Path = "keys.db"  # a SQLite file, or a redis:// / rediss:// URL (serve.stores)
    defense: str = "none"
    output: str = "probabilities"
    top_k: int = 3
    max_batch: int = 64
    max_body_bytes: int | None = None
    threads: int = 1
    precision: str = "int8"
    format: str = DEFAULT
    on_flag: str = "log"  # what happens to a key the monitor flags (serve.policy)


def blocked(record: KeyRecord) -> ClientError:
    """403 for a flagged key under `--on-flag block`; the evidence stays with the operator."""
    return ClientError(
        403, "forbidden",
        f"API key '{record.name}' is blocked: its queries look like an attempt to copy the model; "
        "if this is a mistake, ask the operator to review the key",
    )


@dataclass(frozen=True)
class Caller:
    key: str
    record: KeyRecord  # as read when the request arrived
    day: str  # the UTC day the request is charged to


class Service:
    def __init__(
        self,
        predictor: Predictor,
        store: BaseKeyStore,
        max_batch: int,
        max_body_bytes: int | None = None,
        clock: Callable[[], datetime] = utc_now,
        monitor: Monitor | None = None,
        policy: FlagPolicy | None = None,
    ):
        self.predictor = predictor
        self.store = store
        self.clock = clock
        self.monitor = monitor  # None: the manifest holds no calibrated thresholds for this model file
        self.policy = policy or FlagPolicy()
        self.unwatched: list[tuple[str, np.ndarray, np.ndarray]] = []  # (key name, x, logits) answered, not yet watched
        self.unsaved_flags: dict[str, str] = {}  # key name -> the flag's reason, raised while the store was down
        self.metrics = Metrics()
        model = predictor.model
        self.name = model.manifest.name
        self.spec = InputSpec(model.input_shape, max_batch)
        self.max_body_bytes = max_body_bytes or default_max_body_bytes(model.input_shape, max_batch)
        self.outputs = predictor.output_metadata()  # also the warm-up inference
        self.output_names = tuple(o["name"] for o in self.outputs)

    @classmethod
    def load(cls, config: ServeConfig) -> "Service":
        """Verify and load the model (sha256 against the manifest), parse the stack and the flag policy,
        set the monitor up from the manifest's thresholds, open the keys."""
        stack = parse_stack(config.defense)
        policy = FlagPolicy.parse(config.on_flag)
        model = DeployedModel.load(config.folder, precision=config.precision, format=config.format, threads=config.threads)
        predictor = Predictor(model, stack, config.output, config.top_k)
        thresholds = model.entry.monitor
        monitor = Monitor(MonitorConfig.from_dict(thresholds), model.num_classes, model.input_shape) if thresholds else None
        store = open_store(config.keys, serving=True)
        return cls(predictor, store, config.max_batch, config.max_body_bytes, monitor=monitor, policy=policy)

    def authenticate(self, key: str | None) -> Caller:
        if not key:
            raise ClientError(
                401, "unauthorized", "this route needs an API key: send the header 'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )
        self.save_flags()
        record = self.store.lookup(key)
        if record is None:
            raise ClientError(401, "unauthorized", "unknown API key; check it, or ask the operator for one", {"WWW-Authenticate": "Bearer"})
        day = utc_day(self.clock())
        refusal = record.refusal(1, day)
        if refusal:
            raise ClientError(403, "forbidden", refusal)
        if record.flagged is not None and self.policy.block:
            raise blocked(record)
        return Caller(key, record, day)

    def check_model(self, name: str) -> None:
        if name != self.name:
            raise ClientError(404, "not_found", f"no model named '{name}' here; this server serves '{self.name}'")

    def answer(self, caller: Caller, batch: Batch) -> Answer:
        """Decode image files, rate-limit and charge every item (one step of the key store), then
        answer: (n, C, H, W) validated or n files -> the served outputs."""
        self.watch()  # whatever an earlier request left, if the app did not run it after its response
        n, record = len(batch), caller.record
        slow = record.flagged is not None and self.policy.slow
        rate, burst = (min(record.rate or SLOW_RATE, SLOW_RATE), 1) if slow else (record.rate, record.burst)
        x = decode(batch, self.predictor.model.image_spec) if isinstance(batch, ImageFiles) else batch
        charge = self.store.charge(caller.key, n, caller.day, rate, burst, refuse_flagged=self.policy.block)
        if charge.wait > 0:
            raise ClientError(
                429, "rate_limited",
                f"API key '{record.name}' may send {rate:g} items per second (bursts of {burst}); retry in {charge.wait:.2f} s",
                {"Retry-After": str(max(1, math.ceil(charge.wait)))},
            )
        if not charge:
            latest = charge.record or self.store.lookup(caller.key)
            if latest is not None and latest.flagged is not None and self.policy.block:
                raise blocked(latest)  # flagged since it was looked up (by another device, with a shared store)
            refusal = latest.refusal(n, caller.day) if latest else None  # None only if another process raced a change in
            raise ClientError(403, "forbidden", refusal or f"API key '{record.name}' cannot be charged {n} more items now")
        record = charge.record or record  # as the charge found it, if the store read it then: a flag raised since applies now
        flagged = record.flagged is not None
        logits = self.predictor.model.logits(x)
        if self.monitor is not None and not flagged:  # a flagged key is not watched until its flag is cleared
            self.unwatched.append((record.name, x, logits))
        extra = self.policy.stack if flagged and len(self.policy.stack) else None
        answer = self.predictor.answer(x, logits, extra)
        self.metrics.items += n
        return answer

    def watch(self) -> None:
        """Show the monitor the queries answered since the last call; persist and log the flags it raises.

        Off the answer's path: the app calls it once a response is sent, so a flag takes effect from
        the key's next request. Watching inline cost ~55 us a query in the server (cold caches after
        the JSON parse and the model), over 10% of a served request (docs/detection.md); after the
        response it overlaps with the network and the client. `answer` calls it too, so nothing
        waits past one request when the app is not there to run it.
        """
        monitor, pending = self.monitor, self.unwatched
        if monitor is None or not pending:
            return
        self.unwatched = []
        flagged = set()
        for name, x, logits in pending:
            flag = None if name in flagged else monitor.observe(name, x, logits)
            if flag is not None:
                flagged.add(name)
                self.unsaved_flags[name] = str(flag)
                log.warning("edgeguard serve: API key '%s' flagged as a likely extraction client (%s); on flag: %s", name, flag, self.policy.name)
        self.save_flags()

    def save_flags(self) -> None:
        """Persist the monitor's flags; those the store cannot take now wait for the next call
        (the monitor raises a flag once, so dropping one would let the key go unflagged)."""
        for name, reason in list(self.unsaved_flags.items()):
            try:
                self.store.flag(name, reason)
            except KeysUnavailable:
                return
            del self.unsaved_flags[name]

    def predict(self, caller: Caller, body: bytes, content_type: str | None = None) -> dict[str, Any]:
        """/predict: JSON pixels, or image files by `content_type` (protocol.parse_predict)."""
        answer = self.answer(caller, parse_predict(body, self.spec, content_type))
        classes = self.predictor.model.manifest.classes
        return {name: value.tolist() for name, value in answer.tensors.items()} | {
            "labels": [classes[i] for i in answer.top1]
        }

    def infer(self, caller: Caller, name: str, body: bytes) -> dict[str, Any]:
        self.check_model(name)
        request = parse_infer(body, self.spec, self.output_names)
        answer = self.answer(caller, request.x)
        wanted = request.outputs or self.output_names
        reply: dict[str, Any] = {"model_name": self.name}
        if request.id is not None:
            reply["id"] = request.id
        reply["outputs"] = [v2_tensor(n, answer.tensors[n]) for n in wanted]
        return reply

    def server_metadata(self) -> dict[str, Any]:
        """Open Inference Protocol server metadata, plus the served model's name: how a client that has
        only the URL finds the model (the name is no secret: a wrong one's 404 says it too)."""
        return {"name": "edgeguard", "version": __version__, "extensions": [], "models": [self.name]}

    def metadata(self, name: str) -> dict[str, Any]:
        """What a client needs to query: shapes, classes, output form; never the defense parameters."""
        self.check_model(name)
        model = self.predictor.model
        return {
            "name": self.name,
            "platform": FORMATS[model.entry.format].platform,
            "inputs": [{"name": self.spec.name, "datatype": "FP32", "shape": [-1, *self.spec.shape]}],
            "outputs": self.outputs,
            "classes": list(model.manifest.classes),
            "int8": model.entry.precision == "int8",
            "output": self.predictor.output,
            "max_batch": self.spec.max_batch,
        }

    def render_metrics(self) -> str:
        return self.metrics.render(self.store.records(), utc_day(self.clock()))
