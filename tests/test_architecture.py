"""The shape of the code, checked: no import circles, one table of formats, training apart from export."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edgeguard"
# the table itself, and each format's own writer and backend modules (the row's other two parts)
FORMAT_MODULES = {"formats.py", "export/onnx.py", "export/tflite.py", "export/pt2e.py", "runtime/onnx.py", "runtime/tflite.py"}
FORMAT_LITERAL = re.compile(r"""["'](?:onnx|tflite|onnxruntime_onnx)["']|["'][^"'\s]*\.(?:onnx|tflite)["']""")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the edgeguard modules it imports, at the top or inside functions (lazy imports count)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeguard"):
                # `from edgeguard.x import y` imports edgeguard.x.y when y is a module, else edgeguard.x
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("edgeguard")}
        graph[name] = (found & modules.keys()) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each as the path that closes it (depth-first search)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circles():
    graph = imports()
    assert len(graph) > 50  # the walk really read the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_training_imports_nothing_from_export_or_bench():
    graph = imports()
    training = {m: deps for m, deps in graph.items() if m.startswith("edgeguard.train")}
    assert training and all(not d.startswith(("edgeguard.export", "edgeguard.bench")) for deps in training.values() for d in deps)


def test_format_names_and_suffixes_appear_only_in_the_table():
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() in FORMAT_MODULES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FORMAT_LITERAL.search(line):
                stray.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert stray == []
    assert FORMAT_LITERAL.search('x = "model.int8.onnx"') and FORMAT_LITERAL.search("format='tflite'")


def test_every_benchmark_script_imports():
    """A script's imports are checked by nothing else until someone runs it (a renamed helper once broke one)."""
    import importlib.util
    import sys

    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        spec.loader.exec_module(module)  # `if __name__ == "__main__"` keeps main() from running
