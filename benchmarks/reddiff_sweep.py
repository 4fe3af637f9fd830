"""RED-Diff's lambda / lr ablation: run the sweep, then draw PSNR and SSIM heat maps.

    python benchmarks/reddiff_sweep.py

Runs ``benchmarks/sweeps/reddiff_lambda_lr.toml`` through ``pnpkit bench`` (pnpkit-bench; resumable) and
writes ``benchmarks/results/reddiff_lambda_lr/lambda_lr.png``: mean PSNR and SSIM per
(lambda, lr) for each task, as the paper's ablation of its fidelity / perception knob.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from pnpkit_bench import sweep as bench

HERE = Path(__file__).parent


def main() -> int:
    rows = bench.run(HERE / "sweeps" / "reddiff_lambda_lr.toml", progress=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid: dict[tuple[str, float, float], list[dict[str, str]]] = {}
    for r in rows:
        m = re.fullmatch(r"lam([\d.e-]+)-lr([\d.e-]+)", r["solver"])
        if r["status"] == "ok" and m:
            grid.setdefault((r["task"], float(m[1]), float(m[2])), []).append(r)
    tasks = sorted({k[0] for k in grid})
    lams = sorted({k[1] for k in grid})
    lrs = sorted({k[2] for k in grid})
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.4 * len(tasks), 7), squeeze=False)
    for j, task in enumerate(tasks):
        for i, metric in enumerate(("psnr", "ssim")):
            z = np.array([[statistics.fmean(float(r[metric]) for r in grid.get((task, lam, lr), []))
                           if grid.get((task, lam, lr)) else np.nan for lr in lrs] for lam in lams])
            ax = axes[i][j]
            im = ax.imshow(z, cmap="viridis", origin="lower")
            for a in range(len(lams)):
                for b in range(len(lrs)):
                    ax.text(b, a, f"{z[a, b]:.2f}", ha="center", va="center", color="w", fontsize=8)
            ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
            ax.set_yticks(range(len(lams)), [f"{v:g}" for v in lams])
            ax.set_xlabel("lr")
            ax.set_ylabel("lambda")
            ax.set_title(f"{task}: {metric.upper()}", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle("RED-Diff, 200 steps, validation split: lambda (prior weight) vs lr", fontsize=10)
    fig.tight_layout()
    out = HERE / "results" / "reddiff_lambda_lr" / "lambda_lr.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
