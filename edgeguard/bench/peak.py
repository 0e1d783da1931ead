"""The CPU's limit: which int8 and fp32 vector instructions it has, and the MAC rate per core they imply.

Peak = MACs per cycle per core x clock. MACs per cycle come from the widest multiply-accumulate the
instruction set offers and how many of them a core issues per cycle (instruction tables: uops.info,
Agner Fog's "Instruction tables", Arm's Software Optimization Guides; docs/benchmarks.md lists each
row's reasoning). The clock is the kernel's: sysfs's maximum frequency where the kernel exposes one,
else /proc/cpuinfo's "cpu MHz" (a VM's nominal clock; turbo can exceed it, so a share above 100% is
possible there). The standard library and bench.timing only: a device runs this.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeguard.bench.timing import cpuinfo, interleaved

MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


@dataclass(frozen=True)
class Isa:
    """One instruction set's best int8 and fp32 multiply-accumulate, per core and cycle."""

    name: str
    flags: tuple[str, ...]  # all must be in /proc/cpuinfo's flags (x86) or Features (aarch64)
    int8_macs_per_cycle: int
    fp32_macs_per_cycle: int
    why: str  # the instruction, its width and issue rate: where each number comes from


# most capable first; the first whose flags are all present is the machine's
ISAS = (
    Isa("AVX-512 VNNI", ("avx512_vnni",), 64, 32,
        "int8: VPDPBUSD zmm = 64 u8*s8 MACs, 1 per cycle (Ice Lake/Sapphire Rapids server: port 0; Zen 4: "
        "double-pumped 256-bit); fp32: 2 x VFMADD zmm (16 lanes) per cycle"),
    Isa("AVX-VNNI", ("avx_vnni",), 64, 16,
        "int8: VPDPBUSD ymm = 32 MACs, 2 per cycle (ports 0, 1); fp32: 2 x VFMADD ymm (8 lanes) per cycle"),
    Isa("AVX2", ("avx2", "fma"), 32, 16,
        "int8: VPMADDUBSW ymm (32 u8*s8 products into 16-bit pair sums) + VPMADDWD to 32 bit, both on the "
        "2 vector multiply ports -> 32 MACs per cycle; fp32: 2 x VFMADD ymm (8 lanes) per cycle"),
    Isa("NEON dot-product", ("asimddp",), 32, 8,
        "int8: SDOT/UDOT 128-bit = 16 MACs, 2 per cycle (Cortex-A76/A78: 2 ASIMD pipes); fp32: 2 x FMLA 4 lanes"),
    Isa("NEON", ("asimd",), 16, 8,
        "int8: SMLAL/SMLAL2 8 lanes of 16-bit products, 2 per cycle (Cortex-A72: 2 ASIMD pipes); fp32: 2 x FMLA 4 lanes"),
)  # fmt: skip
HALF_WIDTH = (
    "AMD Zen 1 (family 23, model < 0x30) splits each 256-bit instruction into two 128-bit halves and has one "
    "vector integer multiply pipe: int8 VPMADDUBSW + VPMADDWD on that pipe -> 8 MACs per cycle; fp32: 2 x 128-bit FMA -> 8"
)


def detect_isa(info: dict[str, str]) -> Isa | None:
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return next((isa for isa in ISAS if set(isa.flags) <= flags), None)


def half_width_zen(info: dict[str, str]) -> bool:
    """AMD Zen 1 / Zen+: 128-bit vector datapath, so AVX2's rates halve (int8's quarter: one multiply pipe)."""
    return info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "23" and int(info.get("model", "0")) < 0x30


def clock_ghz(info: dict[str, str]) -> tuple[float | None, str]:
    """(GHz, where it came from): sysfs's maximum, else cpuinfo's 'cpu MHz', else the model name's '@ x GHz'."""
    try:
        return int(MAX_FREQ.read_text()) / 1e6, str(MAX_FREQ)
    except (OSError, ValueError):
        pass
    if "cpu MHz" in info:
        return float(info["cpu MHz"]) / 1e3, "/proc/cpuinfo 'cpu MHz' (nominal; a VM's host may turbo above it)"
    match = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
    return (float(match.group(1)), "the model name") if match else (None, "unknown: no sysfs frequency, no 'cpu MHz'")


def peak(info: dict[str, str] | None = None) -> dict[str, Any]:
    """The per-core int8 and fp32 peak in G MAC/s, with the instruction set, the clock and their sources."""
    info = cpuinfo() if info is None else info
    isa, (ghz, clock_source) = detect_isa(info), clock_ghz(info)
    if isa is None:
        return {"isa": None, "machine": platform.machine(), "clock_ghz": ghz, "clock_source": clock_source, "why": "no known SIMD flags"}
    int8, fp32, why = isa.int8_macs_per_cycle, isa.fp32_macs_per_cycle, isa.why
    if isa.name == "AVX2" and half_width_zen(info):
        int8, fp32, why = 8, 8, HALF_WIDTH
    return {
        "isa": isa.name, "cpu": info.get("model name") or info.get("CPU part"), "int8_macs_per_cycle": int8, "fp32_macs_per_cycle": fp32,
        "clock_ghz": ghz, "clock_source": clock_source, "why": why,
        "int8_gmacs_per_core": round(int8 * ghz, 1) if ghz else None, "fp32_gmacs_per_core": round(fp32 * ghz, 1) if ghz else None,
    }  # fmt: skip


def gemm_ceiling(m: int = 256, k: int = 1024, n: int = 256, runs: int = 30) -> dict[str, Any]:
    """What onnxruntime's own GEMM kernels reach here on one thread: int8 (MatMulInteger, u8 x s8, the
    kernel QLinearConv and QGemm call) and fp32 (MatMul), timed in turn; a measured limit beside the
    instruction tables' (on a shared machine, also a reading of how much of a core this run got).
    Needs the onnx package to build the two one-node graphs."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def session(op: str, a_type: int, b_type: int) -> Any:
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "b"], ["y"])], op,
            [helper.make_tensor_value_info("a", a_type, [m, k]), helper.make_tensor_value_info("b", b_type, [k, n])],
            [helper.make_tensor_value_info("y", TensorProto.INT32 if op == "MatMulInteger" else TensorProto.FLOAT, [m, n])],
        )  # fmt: skip
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    feeds = {
        "int8": (session("MatMulInteger", TensorProto.UINT8, TensorProto.INT8),
                 {"a": rng.integers(0, 256, (m, k), dtype=np.uint8), "b": rng.integers(-64, 64, (k, n), dtype=np.int8)}),
        "fp32": (session("MatMul", TensorProto.FLOAT, TensorProto.FLOAT),
                 {"a": rng.random((m, k), dtype=np.float32), "b": rng.random((k, n), dtype=np.float32)}),
    }  # fmt: skip
    samples = interleaved({p: (lambda s=s, f=f: s.run(None, f)) for p, (s, f) in feeds.items()}, runs, 3)
    return {
        "shape_m_k_n": [m, k, n], "threads": 1,
        **{f"{p}_gmacs_per_s": round(m * k * n / (float(np.median(t)) / 1e9) / 1e9, 2) for p, t in samples.items()},
    }  # fmt: skip
