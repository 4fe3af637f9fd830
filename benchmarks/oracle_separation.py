"""The oracle ceiling of the separation sweep: ideal ratio masks from the true stems, no prior.

    python benchmarks/oracle_separation.py [--data DIR] [--out DIR]

On the same 9 test pieces as ``benchmarks/sweeps/separation.toml`` (the ``chorales`` dataset,
split ``test``, the first 8.192 s from each piece's first note), each stem is estimated by
masking the mixture's STFT with the stem's ideal ratio mask, computed from the true stems,

    M_k = |S_k|^a / sum_j |S_j|^a,        x_k = iSTFT(M_k * STFT(y)),

with a = 1 (magnitude ratio, the "IRM1" of SiSEC's oracles) and a = 2 (power ratio, the ideal
Wiener filter "IRM2"), Hann windows of several lengths with a 75 % overlap. The masks sum to
one, so the estimates sum to the mixture, as a separation by the project's solvers does. The
score is the sweep's own metric, ``pnpkit_msdm.metrics.si_snri_msdm`` (MSDM's 4 s windows
every 2 s, windows with at most one sounding stem skipped), averaged over the pieces as the
sweep's summary does. Needs the built dataset (``pnpkit build-audio-dataset --out
data/chorales-8k --limit 160``); runs in seconds.

Results: ``rows.csv`` (one row per piece, exponent and window), ``summary.json`` and
``README.md`` (the table) under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import time
from pathlib import Path

import torch

STEMS = ("bass", "drums", "guitar", "piano")
WINDOWS = (256, 512, 1024, 2048)
EXPONENTS = (1, 2)


def ratio_mask_separation(stems: torch.Tensor, n_fft: int, exponent: float) -> torch.Tensor:
    """Separate ``stems.sum(0)`` with the ideal ratio masks of ``stems`` (K, L): (K, L)."""
    window = torch.hann_window(n_fft, dtype=stems.dtype)
    hop = n_fft // 4
    spec = lambda x: torch.stft(x, n_fft, hop, window=window, return_complex=True)  # noqa: E731
    sources = spec(stems)                      # (K, F, T)
    mixture = spec(stems.sum(0))               # (F, T)
    power = sources.abs() ** exponent
    total = power.sum(0, keepdim=True)
    # Where every stem is exactly silent the mixture is 0 too: any mask gives 0 there.
    masks = torch.where(total > 0, power / total.clamp_min(1e-30), 1.0 / stems.shape[0])
    return torch.istft(masks * mixture, n_fft, hop, window=window, length=stems.shape[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="the built dataset (default: data/chorales-8k)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/oracle_separation"))
    parser.add_argument("--seconds", type=float, default=8.192)
    args = parser.parse_args(argv)

    from pnpkit_audio.dataset import chorales
    from pnpkit_msdm.metrics import si_snri_msdm

    items = chorales(args.data, split="test", seconds=args.seconds)
    start = time.perf_counter()
    rows = []
    for item in items:
        stems = item.signal.to(torch.float64)
        for exponent in EXPONENTS:
            for n_fft in WINDOWS:
                est = ratio_mask_separation(stems, n_fft, exponent)
                # The masks sum to one: the estimates add up to the mixture.
                err = float((est.sum(0) - stems.sum(0)).abs().max())
                assert err < 1e-6, f"{item.id}: estimates miss the mixture by {err}"
                gains = si_snri_msdm(est[None].float(), stems[None].float(), item.sample_rate)[0]
                rows.append({"item": item.id, "mask": f"IRM{exponent}", "n_fft": n_fft,
                             "window_ms": round(1000 * n_fft / item.sample_rate, 1),
                             "si_snri_msdm": float(gains.nanmean()),
                             **{f"si_snri_msdm/{s}": float(g) for s, g in zip(STEMS, gains, strict=True)}})
    seconds = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "rows.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})

    keys = ["si_snri_msdm", *(f"si_snri_msdm/{s}" for s in STEMS)]
    table = []
    for exponent in EXPONENTS:
        for n_fft in WINDOWS:
            sel = [r for r in rows if r["mask"] == f"IRM{exponent}" and r["n_fft"] == n_fft]
            entry = {"mask": f"IRM{exponent}", "n_fft": n_fft, "window_ms": sel[0]["window_ms"],
                     "n": len(sel)}
            for k in keys:
                vals = [r[k] for r in sel if not math.isnan(r[k])]
                mean = sum(vals) / len(vals)
                entry[k] = round(mean, 3)
                entry[k + ":std"] = round(math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)), 3)
            table.append(entry)
    best = max(table, key=lambda e: e["si_snri_msdm"])
    summary = {"pieces": [i.id for i in items], "sample_rate": items[0].sample_rate,
               "seconds": args.seconds, "hop": "n_fft / 4, Hann window", "metric":
               "si_snri_msdm (pnpkit_msdm.metrics), mean over pieces (population std)",
               "table": table, "best": {"mask": best["mask"], "n_fft": best["n_fft"]},
               "wall_seconds": round(seconds, 2), "machine": platform.processor() or platform.machine(),
               "torch": torch.__version__}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    head = ("| mask | window | mean per-stem SI-SNRi (dB) | bass | drums | guitar | piano |\n"
            "|---|---|---|---|---|---|---|\n")
    lines = "".join(
        f"| {e['mask']} | {e['n_fft']} ({e['window_ms']:g} ms) | "
        + " | ".join(f"{e[k]:+.2f} ± {e[k + ':std']:.2f}" for k in keys) + " |\n" for e in table)
    (args.out / "README.md").write_text(
        "# Oracle ceiling of the separation sweep (ideal ratio masks, no prior)\n\n"
        f"The {len(items)} test pieces of `benchmarks/sweeps/separation.toml` "
        f"({', '.join(i.id for i in items)}; the first {args.seconds} s from each piece's first "
        f"note, {items[0].sample_rate} Hz). Each stem is the mixture's STFT masked by the stem's "
        "ideal ratio mask from the true stems, M_k = |S_k|^a / sum_j |S_j|^a (IRM1: a = 1, "
        "IRM2: a = 2, the ideal Wiener filter), Hann window of n_fft samples, hop n_fft / 4, "
        "back through the inverse STFT; the estimates sum to the mixture. Score: the sweep's "
        "metric `si_snri_msdm` (MSDM's 4 s windows every 2 s, windows with at most one sounding "
        "stem skipped), mean ± std over the pieces, as in `../separation/summary.md`.\n\n"
        + head + lines
        + f"\nBest: {best['mask']} at n_fft = {best['n_fft']}, "
        f"{best['si_snri_msdm']:+.2f} dB mean per-stem SI-SNRi. "
        f"All {len(rows)} separations took {seconds:.1f} s on one CPU thread.\n\n"
        "Rebuild: `OMP_NUM_THREADS=1 python benchmarks/oracle_separation.py` (needs "
        "`pnpkit build-audio-dataset --out data/chorales-8k --limit 160`). Per piece: `rows.csv`.\n")
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
