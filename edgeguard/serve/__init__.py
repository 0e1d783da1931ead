"""`edgeguard serve`: answer queries over HTTP on the device, behind API keys, budgets and a defense stack.

    from edgeguard.serve import ServeConfig, serve
    serve(ServeConfig(folder="export/digits-small-cnn-qat-x86-s0", keys="keys.db", defense="topk(k=3)"))

Device side: numpy, onnxruntime, starlette, uvicorn, orjson and SQLite, never torch.
docs/serving.md describes the routes, keys, budgets and errors.
"""

from edgeguard.serve.app import create_app
from edgeguard.serve.keys import KeyRecord, KeyStore
from edgeguard.serve.predictor import OUTPUT_MODES, Predictor
from edgeguard.serve.server import serve
from edgeguard.serve.service import ServeConfig, Service

__all__ = ["OUTPUT_MODES", "KeyRecord", "KeyStore", "Predictor", "ServeConfig", "Service", "create_app", "serve"]
