"""Peak memory of the diffusion solvers on a batch, each in a fresh process, side by side.

    python benchmarks/peak_memory.py [--batch 16] [--steps 50]

At 32 x 32 and one image, every solver's peak is a few MB of network activations and the
allocator's noise is of the same size (see the image sweep's `peak memory` column). Here a
batch of held-out patches (SR x4, default grey prior) is restored by each solver in its own
Python process, and the resident-set growth during the solve is sampled as `pnpkit bench`
does (`pnpkit_bench.memory.PeakMemory`, every 2 ms, glibc returning freed blocks). The per-step
working set does not depend on the number of steps, so the samplers run `--steps` steps
(DCDP: its preset, whose data step has no steps setting to shrink). The RED-Diff target is at
most 0.4x DPS's peak.

Results: ``benchmarks/results/peak_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

SOLVERS = {
    "dps": {"name": "dps", "weight": 60.0},
    "reddiff": {"name": "reddiff", "preset": "sr4"},
    "dcdp-v1": {"name": "dcdp", "preset": "sr4"},
    "dcdp-v2": {"name": "dcdp", "preset": "sr4", "purification": "tweedie"},
    "projdiff": {"name": "projdiff", "preset": "sr4"},
    "pnp-hqs": {"name": "hqs", "sigma": 0.4, "sigma_end": 0.02},
}
STEPS_KEY = {"dps": "iterations", "reddiff": "iterations", "projdiff": "iterations", "hqs": "iterations"}


def child(label: str, batch: int, steps: int) -> dict:
    import torch

    import pnpkit
    from pnpkit import operators as ops
    from pnpkit_bench.memory import PeakMemory

    settings = dict(SOLVERS[label])
    name = settings.pop("name")
    if name in STEPS_KEY:
        settings[STEPS_KEY[name]] = steps
    prior = pnpkit.create("prior", "default-grey32")
    items = pnpkit.create("dataset", "heldout-grey32", count=batch)
    x = torch.stack([it.signal for it in items])
    op = pnpkit.create("operator", "super-resolution", shape=tuple(x.shape[1:]))
    y = ops.measure(op, x, torch.Generator().manual_seed(0))
    solver = pnpkit.create("solver", name, **settings)
    with PeakMemory(torch.device("cpu")) as mem:
        res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(1))
    return {"solver": label, "settings": solver.to_dict(), "peak_mb": mem.peak_mb, "nfe": res.nfe}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "peak_memory.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.steps)))
        return 0
    rows = []
    for label in SOLVERS:
        out = subprocess.run([sys.executable, __file__, "--child", label, "--batch", str(args.batch),
                              "--steps", str(args.steps)], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{label} failed:\n{out.stderr[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{label:10s} peak {rows[-1]['peak_mb']:8.1f} MB  (NFE {rows[-1]['nfe']})", flush=True)
    dps = next(r["peak_mb"] for r in rows if r["solver"] == "dps")
    for r in rows:
        r["ratio_to_dps"] = r["peak_mb"] / dps
    reddiff = next(r for r in rows if r["solver"] == "reddiff")["ratio_to_dps"]
    result = {"batch": args.batch, "steps": args.steps, "task": "sr4, default-grey32, heldout-grey32",
              "rows": rows, "reddiff_over_dps": reddiff, "target": 0.4, "meets_target": reddiff <= 0.4,
              "machine": f"{platform.machine()}, CPU, one process per solver"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"RED-Diff / DPS peak memory: x{reddiff:.3f} (target <= 0.4): "
          f"{'OK' if reddiff <= 0.4 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
