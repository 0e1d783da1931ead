"""The frame every benchmark script shares: measure, stamp the machine and the command, save, print.

A result file is only worth keeping with the machine it was measured on, how busy that machine
was before and after (other work inflates every timing), and the command that reproduces it, so
the scripts leave that to this one function instead of each writing it again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from edgeguard.bench.timing import machine
from edgeguard.errors import EdgeguardError
from edgeguard.files import atomic_write_json

Result = dict[str, Any]


def run_script(
    args: argparse.Namespace, measure: Callable[[], Result], render: Callable[[Result], str], failed: Callable[[Result], bool] = lambda _: False
) -> int:
    """Exit status of a benchmark script: 1 on a clear error (printed, nothing saved) or a failed check, else 0.

    `args` are the script's parsed options: `args.out` is where the result goes, and all of them are
    recorded as its settings.
    """
    before = machine()
    try:
        result = measure()
    except EdgeguardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    result["machine"] = {**before, **result.get("machine", {}), "load_average_at_end": machine()["load_average_1_5_15_min"]}
    result["command"] = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    result.setdefault("settings", {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    atomic_write_json(args.out, result)
    print(render(result))
    print(f"saved {args.out}")
    return 1 if failed(result) else 0
