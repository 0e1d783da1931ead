"""Exporters: a trained run -> model files + manifest.json in an export folder.

`pipeline.export_run` is the entry point; one module per format (`onnx.py`, `tflite.py`) holds the
writer, and `pt2e.py` re-expresses the eager int8 model in the form litert-torch converts.
Nothing is imported here so that training can use a format writer without a circular import.
"""
