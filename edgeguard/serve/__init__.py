"""`edgeguard serve`: answer queries over HTTP on the device, behind API keys, budgets and a defense stack.

    from edgeguard.serve import ServeConfig, serve
    serve(ServeConfig(folder="export/digits-small-cnn-qat-x86-s0", keys="keys.db", defense="topk(k=3)"))

Device side: numpy, onnxruntime, starlette, uvicorn, orjson and SQLite (or redis-py for a fleet's
shared key store), never torch.
docs/serving.md describes the routes, keys, budgets and errors.
"""

from edgeguard.serve.app import create_app
from edgeguard.serve.keys import BaseKeyStore, KeyRecord, KeyStore
from edgeguard.serve.predictor import OUTPUT_MODES, Predictor
from edgeguard.serve.server import serve
from edgeguard.serve.service import ServeConfig, Service
from edgeguard.serve.stores import open_store

__all__ = ["OUTPUT_MODES", "BaseKeyStore", "KeyRecord", "KeyStore", "Predictor", "ServeConfig", "Service", "create_app", "open_store", "serve"]
