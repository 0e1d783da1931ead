"""edgeguard: true int8 image classifiers for edge devices, hardened against model extraction.

Two sides, one direction of imports: the training side (`data`, `models`, `train`, `export`) needs
torch; the device side (`runtime`, `defenses`, `serve`) needs numpy and onnxruntime only. The export
folder (model files + manifest.json) is the only thing that crosses from one to the other.
"""

__version__ = "0.1.0"
