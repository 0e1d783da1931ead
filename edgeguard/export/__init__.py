"""Exporters: a trained run -> model files + manifest.json in an export folder."""

from edgeguard.export.pipeline import FORMATS, ExportResult, export_run

__all__ = ["FORMATS", "ExportResult", "export_run"]
