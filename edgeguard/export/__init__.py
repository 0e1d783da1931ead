"""Exporters: a trained run -> model files + manifest.json in an export folder.

`pipeline.export_run` is the entry point; one module per format (`onnx.py`) holds the writer.
Nothing is imported here so that training can use a format writer without a circular import.
"""
