"""The MAC counter against layers counted by hand, and the CPU peak read from /proc/cpuinfo-style fields."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeguard.bench.macs import count_macs
from edgeguard.bench.models import ratios
from edgeguard.bench.peak import detect_isa, peak


def tiny_graph(path):
    """x (n, 4, 8, 8) -> conv 3x3 4->6 pad 1 -> depthwise 3x3 stride 2 -> grouped 1x1 (2 groups) 6->4
    -> QDQ conv 1x1 4->2 -> flatten -> gemm 32->5 (transB) -> matmul 5->3."""
    rng = np.random.default_rng(0)

    def init(name, shape, dtype=np.float32):
        return numpy_helper.from_array(rng.integers(-3, 3, shape).astype(dtype), name)

    inits = [
        init("w1", (6, 4, 3, 3)), init("w2", (6, 1, 3, 3)), init("w3", (4, 3, 1, 1)), init("w4q", (2, 4, 1, 1), np.int8),
        numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z"),
        init("w5", (5, 32)), init("w6", (5, 3)),
    ]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),  # out (6, 8, 8): 384 x 4*9 = 13824
        helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], strides=[2, 2], group=6),  # (6, 4, 4): 96 x 9 = 864
        helper.make_node("Conv", ["b", "w3"], ["c"], group=2),  # (4, 4, 4): 64 x 3 = 192
        helper.make_node("DequantizeLinear", ["w4q", "s", "z"], ["w4"]),
        helper.make_node("Conv", ["c", "w4"], ["d"]),  # (2, 4, 4): 32 x 4 = 128
        helper.make_node("Flatten", ["d"], ["f"]),
        helper.make_node("Gemm", ["f", "w5"], ["g"], transB=1),  # 5 x 32 = 160
        helper.make_node("MatMul", ["g", "w6"], ["y"]),  # 3 x 5 = 15
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], inits,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def test_mac_counter_matches_layers_counted_by_hand(tmp_path):
    got = count_macs(tiny_graph(tmp_path / "tiny.onnx"))
    assert got["by_op"] == {"Conv": 13824 + 864 + 192 + 128, "Gemm": 160, "MatMul": 15}
    assert got["macs"] == 15183 and got["nodes"] == 6


@pytest.mark.parametrize(
    "fields, isa, int8, fp32",
    [
        ({"flags": "sse avx2 fma avx512f avx512_vnni"}, "AVX-512 VNNI", 64, 32),
        ({"flags": "sse avx2 fma avx_vnni"}, "AVX-VNNI", 64, 16),
        ({"flags": "sse avx2 fma", "vendor_id": "GenuineIntel", "cpu family": "6", "model": "85"}, "AVX2", 32, 16),
        ({"flags": "sse avx2 fma", "vendor_id": "AuthenticAMD", "cpu family": "23", "model": "1"}, "AVX2", 8, 8),  # Zen 1: 128-bit units
        ({"flags": "sse avx2 fma", "vendor_id": "AuthenticAMD", "cpu family": "23", "model": "49"}, "AVX2", 32, 16),  # Zen 2
        ({"Features": "fp asimd asimddp"}, "NEON dot-product", 32, 8),
        ({"Features": "fp asimd"}, "NEON", 16, 8),
    ],
)
def test_peak_follows_the_instruction_set_and_the_clock(fields, isa, int8, fp32):
    got = peak({**fields, "cpu MHz": "2500.000"})
    assert (got["isa"], got["int8_macs_per_cycle"], got["fp32_macs_per_cycle"]) == (isa, int8, fp32)
    assert got["int8_gmacs_per_core"] == int8 * 2.5 and "cpu MHz" in got["clock_source"] and got["why"]


def test_no_simd_flags_means_no_peak():
    assert detect_isa({"flags": "fpu sse"}) is None and peak({"flags": "fpu"})["isa"] is None


def test_a_peer_is_compared_with_edgeguards_int8_file_and_its_own_formats_fp32():
    def row(runtime, fmt, precision, ms, peer=False):
        return {"runtime": runtime, "format": fmt, "precision": precision, "threads": 1, "batch": 1, "p50_ms": ms, "size_bytes": 100, "peer": peer}

    rows = [row("ORT", "onnx", "fp32", 4.0), row("ORT", "onnx", "int8", 2.0), row("ORT quantize_static", "onnx", "int8", 2.5, True),
            row("TFLite", "tflite", "fp32", 5.0), row("LiteRT PTQ", "tflite", "int8", 1.0, True)]  # fmt: skip
    got = {r["ratio"]: r["latency_p50"] for r in ratios(rows)}
    assert got == {
        "int8/fp32 ORT": 0.5, "int8/fp32 ORT quantize_static": 0.625, "ORT int8/ORT quantize_static": 0.8,
        "TFLite/ORT fp32": 1.25, "int8/fp32 LiteRT PTQ": 0.2, "ORT int8/LiteRT PTQ": 2.0,
    }  # fmt: skip
