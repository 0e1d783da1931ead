"""The HTTP face of a `Service`: starlette routes, body limits, JSON errors, request metrics.

Routes (docs/serving.md has examples):
    GET  /v2/health/live, /v2/health/ready, /v2/models/{name}/ready   no key (ready: and the key store)
    GET  /v2                                                           server metadata + model name, no key
    GET  /v2/models/{name}                                             metadata
    POST /v2/models/{name}/infer                                       Open Inference Protocol (v2)
    POST /predict                                                      {"inputs": nested array} or image files
    GET  /metrics                                                      Prometheus text, no key

Endpoints run on the event loop itself, not in a thread pool: a query on these models takes tens of
microseconds of onnxruntime, less than handing it to a thread would cost, and one loop thread makes
the service's state (rate buckets, counters, the key store's connection, the monitor) single-threaded
by construction. A Redis key store is a blocking round trip on that loop too: on loopback it costs
less than a thread hop, and it bounds how long one can take (redis_keys.TIMEOUT_S). The monitor runs
as each answer's background task, after its last byte is sent.

A key store that cannot be reached (`KeysUnavailable`) turns every request that needs a key into a
503 with Retry-After, and /v2/health/ready into a 503: nothing is answered without a charge.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeguard.serve.keys import KeysUnavailable
from edgeguard.serve.prometheus import CONTENT_TYPE
from edgeguard.serve.protocol import ClientError, dumps
from edgeguard.serve.service import Service


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None, background: BackgroundTask | None = None) -> Response:
    return Response(dumps(payload), status, headers, media_type="application/json", background=background)


def api_key(request: Request) -> str | None:
    """The key from `X-API-Key: <key>` or `Authorization: Bearer <key>`."""
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else None
    return key.strip() if key else None


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def too_large(limit: int) -> ClientError:
    """413, closing the connection: the rest of the body is not worth reading."""
    return ClientError(
        413, "too_large", f"the body may be at most {limit} bytes (--max-body-bytes); send fewer items or smaller files",
        {"Connection": "close"},
    )


def create_app(service: Service) -> Starlette:
    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        service.store.ping()  # the model was verified and warmed up before binding
        return json_response({"ready": True})

    async def model_ready(request: Request) -> Response:
        service.check_model(request.path_params["name"])
        return json_response({"name": service.name, "ready": True})

    async def server_metadata(request: Request) -> Response:
        return json_response(service.server_metadata())

    async def metadata(request: Request) -> Response:
        service.authenticate(api_key(request))
        return json_response(service.metadata(request.path_params["name"]))

    async def watch() -> None:
        service.watch()  # async on purpose: a sync background task would run in a thread pool

    async def infer(request: Request) -> Response:
        caller = service.authenticate(api_key(request))
        body = await read_body(request, service.max_body_bytes)
        return json_response(service.infer(caller, request.path_params["name"], body), background=BackgroundTask(watch))

    async def predict(request: Request) -> Response:
        caller = service.authenticate(api_key(request))
        body = await read_body(request, service.max_body_bytes)
        content_type = request.headers.get("content-type")
        return json_response(service.predict(caller, body, content_type), background=BackgroundTask(watch))

    async def metrics(request: Request) -> Response:
        return Response(service.render_metrics(), media_type=CONTENT_TYPE)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClientError)
        service.metrics.rejected[exc.reason] += 1
        return json_response({"error": exc.message}, exc.status, exc.headers)

    async def unavailable(request: Request, exc: Exception) -> Response:
        """503: the key store is down; its address and the error are in the server's log, not here."""
        assert isinstance(exc, KeysUnavailable)
        message = f"the server cannot check API keys and budgets right now (its key store is unreachable); retry in {exc.retry_after} s"
        return await refused(request, ClientError(503, "unavailable", message, {"Retry-After": str(exc.retry_after)}))

    async def http_error(request: Request, exc: Exception) -> Response:
        """The router's own 404 / 405, in the same JSON shape as every other error."""
        assert isinstance(exc, HTTPException)
        message = {
            404: f"no such route: {request.url.path}; see /v2/models/{service.name} and /predict",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, exc.detail)
        return json_response({"error": message}, exc.status_code, exc.headers)

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", metadata),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/metrics", metrics),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with service.store.serving():
            yield

    handlers = {ClientError: refused, KeysUnavailable: unavailable, HTTPException: http_error}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    templates = {route.endpoint: route.path for route in routes}
    return RequestMetrics(app, service, templates)


class RequestMetrics:
    """ASGI wrapper timing every request and counting it by route template and status.

    Outermost, so it sees what the client sees, 404s and 500s included; route templates (not raw
    paths) keep the label set small whatever paths clients invent.
    """

    def __init__(self, app: ASGIApp, service: Service, templates: dict[Any, str]):
        self.app = app
        self.metrics = service.metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before starting a response

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = self.templates.get(scope.get("endpoint"), "other")
            self.metrics.observe(route, status, time.perf_counter() - start)
