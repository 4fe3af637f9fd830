"""Cost against size: time, peak memory and the share of time outside the network per solve.

DCDP V2 and ProjDiff (their SR x4 presets, as the image sweep runs them) restore the grey
``camera`` (test split) resized to 128, 256 and 512 pixels from its noiseless 4x
super-resolution, with the default grey prior applied to the whole picture. The prior's
network call is wrapped with a timer, so each solve splits into time inside the network
and time outside it (data steps, projections, the solver's own arithmetic). All sizes and
solvers run in one process, one after the other, so the ratios compare like with like.

The issue's target: time outside the network at most 30% of a DCDP V2 solve at 512 x 512.

Writes ``results.json`` and ``README.md`` (the table) into ``--out`` (default
``benchmarks/results/cost_vs_size/``), and prints the table and whether the target is met.

Usage::

    python benchmarks/cost_vs_size.py                         # 128, 256, 512 (minutes)
    python benchmarks/cost_vs_size.py --sizes 64,128 --iterations 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # loaded from its path (the tests): cost_at_256 stands next to it
    sys.path.insert(0, str(ROOT))

from cost_at_256 import NetworkTimer  # noqa: E402  (forward and backward passes of the network)

#: label -> (registered solver, settings): the image sweep's SR x4 settings.
SOLVERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dcdp-v2": ("dcdp", {"preset": "sr4", "purification": "tweedie"}),
    "projdiff": ("projdiff", {"preset": "sr4"}),
}
NAMES = {"dcdp-v2": "DCDP V2", "projdiff": "ProjDiff"}
SIZES = (128, 256, 512)
#: The issue's target: outside-the-network time at most this share of a DCDP V2 solve at 512.
TARGET = 0.30


def measure_one(label: str, size: int, prior: Any, iterations: int | None = None) -> dict[str, Any]:
    """One solve of ``label`` at ``size`` x ``size``: time, network time, peak memory, PSNR."""
    import skimage.data
    import torch

    from pnpkit import operators as ops
    from pnpkit.data import image_to_tensor
    from pnpkit.metrics import compute
    from pnpkit.plugins import get_manager
    from pnpkit_bench.memory import PeakMemory

    manager = get_manager()
    x = image_to_tensor(skimage.data.camera(), size, 1)[None]
    op = manager.get("operator", "super-resolution").build({"factor": 4, "sigma_y": 0.0},
                                                           shape=tuple(x.shape[1:]))
    name, settings = SOLVERS[label]
    cls = manager.get("solver", name).factory
    extra = {"iterations": iterations} if iterations is not None else {}
    solver = cls.from_dict({"name": cls.name, **settings, **extra})
    g = torch.Generator().manual_seed(0)
    y = ops.measure(op, x, g)
    prior.reset_nfe()
    with PeakMemory(torch.device("cpu")) as mem, NetworkTimer(prior) as net:
        start = time.perf_counter()
        result = solver.solve(y, op, prior, generator=g)
        total = time.perf_counter() - start
    psnr = compute(["psnr"], result.x.clamp(-1, 1), x)["psnr"][0]
    # microseconds kept: at tiny sizes a solve lasts milliseconds, and the share is their ratio
    return {"solver": label, "size": size, "seconds": round(total, 6),
            "network_seconds": round(net.seconds, 6), "network_calls": net.calls,
            "outside_share": round(1 - net.seconds / total, 4) if total > 0 else 0.0,
            "peak_memory_mb": round(mem.peak_mb, 1), "nfe": result.nfe, "psnr": round(psnr, 2)}


def table(results: list[dict[str, Any]]) -> str:
    """The results side by side: per solver and size, and the ratios to the smallest size."""
    lines = ["| solver | size | time (s) | time / smallest | in network (s) | calls | "
             "outside the network | peak memory (MB) | memory / smallest | PSNR (dB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in SOLVERS:
        rows = sorted((r for r in results if r["solver"] == label), key=lambda r: r["size"])
        if not rows:
            continue
        first = rows[0]
        for r in rows:
            t_ratio = r["seconds"] / first["seconds"] if first["seconds"] else float("nan")
            m_ratio = (r["peak_memory_mb"] / first["peak_memory_mb"] if first["peak_memory_mb"] > 0
                       else float("nan"))
            lines.append(f"| {NAMES[label]} | {r['size']} | {r['seconds']:.2f} | {t_ratio:.2f}x | "
                         f"{r['network_seconds']:.2f} | {r['network_calls']} | "
                         f"{100 * r['outside_share']:.0f}% | {r['peak_memory_mb']:.0f} | "
                         f"{m_ratio:.2f}x | {r['psnr']:.2f} |")
    return "\n".join(lines)


def verdict(results: list[dict[str, Any]]) -> str:
    """Whether DCDP V2 at 512 x 512 spends at most :data:`TARGET` of its time outside the network."""
    at = [r for r in results if r["solver"] == "dcdp-v2" and r["size"] == 512]
    if not at:
        return "target not measured (DCDP V2 at 512 x 512 was not run)"
    share = at[0]["outside_share"]
    met = "met" if share <= TARGET else "NOT met"
    return (f"target {met}: DCDP V2 at 512 x 512 spends {100 * share:.0f}% of its time outside "
            f"the network (target: at most {100 * TARGET:.0f}%)")


def run(sizes: list[int], solvers: list[str], iterations: int | None = None,
        log: Any = print) -> list[dict[str, Any]]:
    """Every (solver, size) once, the prior built once (it runs at any size)."""
    from pnpkit.plugins import get_manager

    prior = get_manager().get("prior", "default-grey32").build({}, device="cpu")
    results = []
    for size in sizes:
        for label in solvers:
            r = measure_one(label, size, prior, iterations)
            log(f"{label} {size}: {r['seconds']:.2f} s, {100 * r['outside_share']:.0f}% outside "
                f"the network, {r['peak_memory_mb']:.0f} MB")
            results.append(r)
    return results


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "cost_vs_size")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="picture sides, multiples of 4 (default 128,256,512)")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help=f"of {', '.join(SOLVERS)}")
    parser.add_argument("--iterations", type=int, default=None,
                        help="override the presets' iterations (tests)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown or not solvers or not sizes or any(s < 4 or s % 4 for s in sizes):
        raise SystemExit(f"cost_vs_size.py: solvers must be of {', '.join(SOLVERS)} (got "
                         f"{args.solvers!r}) and sizes multiples of 4 (got {args.sizes!r})")
    results = run(sizes, solvers, args.iterations)
    text = table(results)
    line = verdict(results)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"results": results, "target_outside_share": TARGET, "verdict": line,
              "iterations": args.iterations, "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads"}
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    readme = ("# Cost against size\n\n`benchmarks/cost_vs_size.py`: grey `camera`, noiseless SR x4, "
              "default grey prior applied whole, SR x4 presets; one run, sizes and solvers one after "
              "the other. 'outside the network' is the share of the solve's wall time not spent in "
              "the prior's network calls (data steps, projections, the solver's arithmetic).\n\n"
              f"{text}\n\n{line}.\n")
    (args.out / "README.md").write_text(readme)
    print(text)
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
