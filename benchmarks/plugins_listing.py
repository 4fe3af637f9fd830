"""`pnpkit plugins` wall time against `python -c "import torch"`, measured side by side.

Target (issue 12): at most 0.3x, with every package installed: listing is metadata and
registration, it imports no torch (plugins register ``"module:attr"`` references). Each
command runs ``--repeat`` times, alternating, in fresh interpreters; the medians are compared,
and whether ``pnpkit plugins`` imported torch is recorded. Results go to
``benchmarks/results/plugins_listing.json``.

    python benchmarks/plugins_listing.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.3

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "pnpkit plugins": [sys.executable, "-m", "pnpkit", "plugins"],
    "pnpkit --help": [sys.executable, "-m", "pnpkit", "--help"],
}
#: ``pnpkit plugins`` in-process, reporting the heavy modules it imported.
HEAVY = ("import sys; from pnpkit.cli import main; main(['plugins']); "
         "import json; print(json.dumps(sorted(m for m in ('torch', 'deepinv', 'diffusers', "
         "'matplotlib') if m in sys.modules)), file=sys.stderr)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "plugins_listing.json")
    args = parser.parse_args()
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for cmd in COMMANDS.values():  # warm the file cache once
        subprocess.run(cmd, capture_output=True, check=True)
    for _ in range(args.repeat):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["pnpkit plugins"] / med["import torch"]
    listed = subprocess.run(COMMANDS["pnpkit plugins"], capture_output=True, text=True).stdout
    heavy = subprocess.run([sys.executable, "-c", HEAVY], capture_output=True, text=True).stderr
    result = {"median_seconds": med, "all_seconds": times, "ratio": ratio, "target": TARGET,
              "meets_target": ratio <= TARGET,
              "help_ratio": med["pnpkit --help"] / med["import torch"],
              "heavy_modules_imported_by_listing": json.loads(heavy.strip().splitlines()[-1]),
              "python": platform.python_version(),
              "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
              "plugins_listed": listed.strip().splitlines()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for k, v in med.items():
        print(f"{k:>15}: {v:.3f} s (median of {args.repeat})")
    print(f"ratio pnpkit plugins / import torch = {ratio:.2f} (target <= {TARGET}): "
          f"{'OK' if ratio <= TARGET else 'MISSED'}; heavy modules imported by listing: "
          f"{result['heavy_modules_imported_by_listing']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
