"""Exporters: a trained run -> model files + manifest.json in an export folder.

`pipeline.export_run` is the entry point; one module per format of edgeguard.formats (`onnx.py`,
`tflite.py`) holds the writer, and `pt2e.py` re-expresses the eager int8 model for litert-torch.
"""
