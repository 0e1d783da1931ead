"""Detecting model extraction at the server: a per-key monitor for `edgeguard serve` (docs/detection.md).

    from edgeguard.monitor import Monitor, MonitorConfig
    monitor = Monitor(MonitorConfig.from_dict(model.entry.monitor), model.num_classes, model.input_shape)
    flag = monitor.observe("alice", x, model.logits(x))   # None, or why alice looks like a thief

Device side: numpy and the standard library only (Shapiro-Wilk included), never torch or scipy.
"""

from edgeguard.monitor.config import MonitorConfig
from edgeguard.monitor.monitor import Flag, KeyMonitor, Monitor
from edgeguard.monitor.ood import energy
from edgeguard.monitor.shapiro import shapiro_w

__all__ = ["Flag", "KeyMonitor", "Monitor", "MonitorConfig", "energy", "shapiro_w"]
