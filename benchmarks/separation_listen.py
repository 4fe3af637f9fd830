"""Separated stems to listen to: FLAC files and a spectrogram grid for two test pieces.

Either from a finished separation sweep (its reconstructions, no solving)::

    python benchmarks/separation_listen.py --name separation_listen \\
        --results benchmarks/results/separation [--labels projdiff,msdm-dirac] [--pieces 2]

or from a fresh solve with a prior and solver settings (each ``--solver`` a sweep's
``[[solvers]]`` entry as a TOML inline table; ``--prior`` a prior name or an inline table)::

    python benchmarks/separation_listen.py --name separation_listen_edm \\
        --prior '{ name = "audio-diffusion", settings = { path = "runs/stems8k-edm" } }' \\
        --solver '{ label = "projdiff", name = "projdiff",
                    settings = { preset = "separation", repeats = 2 } }' \\
        --solver '{ label = "msdm-dirac", name = "msdm-dirac" }'

A fresh solve takes its pieces from ``--data`` (TOML keys of a ``[data]`` table; default the
built chorales' test split, the first 8.192 s of each piece, as ``separation.toml``), the
first ``--pieces`` of them, cut to ``--seconds`` (rounded down to the prior's length
multiple), each solved alone with seed ``--seed`` (the measurement is the exact mixture).
Run from the repository root (the dataset and prior paths are relative to it).

Writes into ``--out-root``/``--name`` (default ``benchmarks/results/<name>/``), per piece
``<piece>/``: ``mixture.flac``, ``reference_<stem>.flac``, ``<label>_<stem>.flac`` (24-bit,
the signals' own scale, nothing normalised: a stem is as loud as in the mixture; samples
beyond [-1, 1] are clipped and counted) and ``spectrograms.png`` (rows: the mixture, then each
stem; columns: the true stem, then each method, titled with its SI-SNRi; one dB colour scale
for the whole grid, time in seconds, frequency in Hz); and ``listen.json`` (the source, the
settings, per piece and method the per-stem scores) and ``README.md`` (the same as a table).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = 'dataset = "chorales", split = "test", seconds = 8.192'
METRICS = ["si_snri_msdm", "si_snri"]
N_FFT = 512
DYNAMIC_RANGE_DB = 80.0


# -- inputs ------------------------------------------------------------------------------------
def parse_table(text: str, what: str) -> dict[str, Any]:
    """A TOML inline table (``{ name = "x" }``) or bare keys (``name = "x", k = 1``) as a dict."""
    body = text.strip()
    if body.startswith("{"):
        body = body[1:-1] if body.endswith("}") else body
    try:
        return tomllib.loads(f"v = {{ {body} }}")["v"]
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"{what} {text!r} is not a TOML table ({exc}); e.g. "
                         f"'{{ name = \"projdiff\", settings = {{ repeats = 2 }} }}'") from None


def prior_entry(text: str) -> dict[str, Any]:
    """``--prior``: a registered name or an inline table with ``name`` (and ``label``, ``settings``)."""
    entry = parse_table(text, "--prior") if "=" in text else {"name": text.strip()}
    if "name" not in entry:
        raise SystemExit(f"--prior {text!r} has no name; e.g. --prior default-stems8k")
    entry.setdefault("label", entry["name"])
    entry.setdefault("settings", {})
    return entry


def solver_entry(text: str) -> dict[str, Any]:
    """``--solver``: an inline table with ``name`` (and ``label``, ``settings``)."""
    entry = parse_table(text, "--solver")
    if "name" not in entry:
        raise SystemExit(f"--solver {text!r} has no name; e.g. --solver '{{ name = \"msdm-dirac\" }}'")
    entry.setdefault("label", entry["name"])
    entry.setdefault("settings", {})
    return entry


def crop(signal: Tensor, rate: int, seconds: float | None, multiple: int) -> Tensor:
    """The first ``seconds`` of ``signal`` (C, L), rounded down to a multiple of ``multiple``."""
    if seconds is None:
        return signal
    n = max(multiple, int(seconds * rate) // multiple * multiple)
    if n > signal.shape[-1]:
        raise SystemExit(f"--seconds {seconds}: the pieces are only {signal.shape[-1] / rate:.3f} s long")
    return signal[..., :n]


def from_results(folder: Path, labels: list[str] | None, count: int,
                 pieces: list[str] | None, prior: str | None = None
                 ) -> tuple[list[Any], dict[str, dict[str, Tensor]], dict[str, Any]]:
    """The items, their reconstructions (piece -> label -> (K, L)) and the source of a sweep
    folder, of its prior labelled ``prior`` (default: the sweep's first)."""
    from pnpkit.data import load_items
    from pnpkit_bench.sweep import reconstruction_name

    stamp = folder / "sweep.json"
    if not stamp.is_file():
        raise SystemExit(f"--results {folder}: no sweep.json there; give a folder `pnpkit bench` wrote")
    sweep = json.loads(stamp.read_text())["sweep"]
    items = load_items(dict(sweep["data"]), Path.cwd())
    items = select(items, count, pieces)
    task, noise = sweep["tasks"][0]["name"], f"{sweep['tasks'][0]['noise'][0]:g}"
    priors = [p["label"] for p in sweep["priors"]]
    if prior is not None and prior not in priors:
        raise SystemExit(f"--prior-label {prior!r} is not a prior of {stamp}; priors: "
                         f"{', '.join(priors)}")
    prior, seed = prior or priors[0], str(sweep["seeds"][0])
    known = [s["label"] for s in sweep["solvers"]]
    wanted = labels or known
    missing = [label for label in wanted if label not in known]
    if missing:
        raise SystemExit(f"--labels: {', '.join(missing)} not in {stamp}; labels: {', '.join(known)}")
    from safetensors.torch import load_file

    recon: dict[str, dict[str, Tensor]] = {}
    for item in items:
        recon[item.id] = {}
        for label in wanted:
            path = folder / "reconstructions" / (
                reconstruction_name((task, noise, prior, label, seed, item.id)) + ".safetensors")
            if path.is_file():
                recon[item.id][label] = load_file(path)["x"].float()
            elif labels:  # asked for by name: say so
                raise SystemExit(f"{folder}: no reconstruction of {label!r} for {item.id} ({path.name})")
    source = {"results": str(folder), "task": task, "noise": noise, "prior": prior, "seed": seed,
              "solvers": [s for s in sweep["solvers"] if s["label"] in wanted]}
    return items, recon, source


def select(items: list[Any], count: int, pieces: list[str] | None) -> list[Any]:
    """The pieces named (in that order), else the first ``count``."""
    if pieces:
        by_id = {it.id: it for it in items}
        missing = [p for p in pieces if p not in by_id]
        if missing:
            raise SystemExit(f"--piece: {', '.join(missing)} not in the data; pieces: "
                             f"{', '.join(by_id)}")
        return [by_id[p] for p in pieces]
    return items[:count]


def fresh(prior_spec: dict[str, Any], solvers: list[dict[str, Any]], data: dict[str, Any], count: int,
          pieces: list[str] | None, seconds: float | None, seed: int, device: str
          ) -> tuple[list[Any], dict[str, dict[str, Tensor]], dict[str, Any]]:
    """Solve the pieces with each solver: the items (cropped), reconstructions and source."""
    from dataclasses import replace

    from pnpkit.data import load_items
    from pnpkit.operators import measure
    from pnpkit.plugins import get_manager

    manager = get_manager()
    prior = manager.get("prior", prior_spec["name"]).build(prior_spec["settings"], device=device,
                                                           dtype="float32")
    multiple = int(getattr(prior, "length_multiple", 1))
    items = select(load_items(dict(data), Path.cwd()), count, pieces)
    items = [replace(it, signal=crop(it.signal, int(it.sample_rate), seconds, multiple)) for it in items]
    built = []
    for entry in solvers:
        cls = manager.get("solver", entry["name"]).factory
        built.append((entry["label"], cls.from_dict({"name": cls.name, **entry["settings"]})))
    recon: dict[str, dict[str, Tensor]] = {}
    nfe: dict[str, dict[str, int]] = {}
    for index, item in enumerate(items):
        x = item.signal[None].to(device)
        op = manager.get("operator", "mixture").build({}, shape=tuple(item.signal.shape), device=device,
                                                      dtype="float32")
        recon[item.id], nfe[item.id] = {}, {}
        for label, solver in built:
            gen = torch.Generator(device=device).manual_seed(seed * 100003 + index)
            y = measure(op, x, gen)
            result = solver.solve(y, op, prior, generator=gen, reference=x)
            recon[item.id][label] = result.x[0].detach().float().cpu()
            nfe[item.id][label] = int(result.nfe)
            print(f"{item.id} {label}: NFE {result.nfe}, {result.wall_time:.1f} s", file=sys.stderr)
    source = {"prior": prior_spec, "solvers": solvers, "data": data, "seconds": seconds, "seed": seed,
              "nfe": nfe}
    return items, recon, source


# -- outputs -----------------------------------------------------------------------------------
def write_flac(path: Path, wav: Tensor, rate: int) -> int:
    """Write a mono signal as 24-bit FLAC; return how many samples were clipped to [-1, 1]."""
    import soundfile

    data = wav.detach().cpu().double()
    clipped = int((data.abs() > 1).sum())
    soundfile.write(str(path), data.clamp(-1, 1).numpy(), rate, subtype="PCM_24", format="FLAC")
    return clipped


def spectrogram_db(wav: Tensor) -> Tensor:
    """(frequencies, frames) magnitude in dB of a mono signal (512-point Hann STFT, hop 128)."""
    spec = torch.stft(wav.float(), N_FFT, hop_length=N_FFT // 4, window=torch.hann_window(N_FFT),
                      return_complex=True).abs()
    return 20 * torch.log10(spec.clamp_min(1e-5))


def scores(x: Tensor, ref: Tensor, rate: int, stems: list[str]) -> dict[str, float | None]:
    """Per-stem and mean SI-SNRi of ``x`` (K, L) against ``ref``: over MSDM's windows
    (``si_snri_msdm``, ``si_snri_msdm/<stem>``) and over the whole excerpt (``si_snri``,
    ``si_snri/<stem>``: SI-SNR(x_k, s_k) - SI-SNR(sum_j s_j, s_k)); None where undefined."""
    from pnpkit.metrics import compute, si_snr

    values = {k: v[0] for k, v in compute(METRICS, x[None], ref[None], sample_rate=rate,
                                          channel_names=stems).items()}
    mixture = ref.sum(0, keepdim=True)[None]
    for k, stem in enumerate(stems):
        s_k = ref[None, k:k + 1]
        values[f"si_snri/{stem}"] = float(si_snr(x[None, k:k + 1], s_k) - si_snr(mixture, s_k))
    return {k: (None if not math.isfinite(v) else round(float(v), 4)) for k, v in sorted(values.items())}


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def draw_grid(path: Path, item: Any, recon: dict[str, Tensor], piece_scores: dict[str, dict[str, Any]]
              ) -> None:
    """Rows: mixture, then each stem; columns: the true stem, then each method."""
    from matplotlib.figure import Figure

    rate, stems = int(item.sample_rate), list(item.channel_names)
    labels = list(recon)
    columns = 1 + len(labels)
    rows = 1 + len(stems)
    fig = Figure(figsize=(3.2 * columns + 1.0, 2.1 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    ref = item.signal.float()
    panels = {(0, 0): (ref.sum(0), "mixture")}
    for k, stem in enumerate(stems):
        panels[(1 + k, 0)] = (ref[k], f"{stem}: true")
        for j, label in enumerate(labels):
            s = piece_scores[label]
            msdm, plain = s.get(f"si_snri_msdm/{stem}"), s.get(f"si_snri/{stem}")
            title = f"{stem}: {label}\nSI-SNRi {fmt(plain)} dB (MSDM windows {fmt(msdm)})"
            panels[(1 + k, 1 + j)] = (recon[label][k], title)
    specs = {pos: spectrogram_db(wav) for pos, (wav, _) in panels.items()}
    top = max(float(s.max()) for s in specs.values())
    seconds = ref.shape[-1] / rate
    image = None
    for (r, c), (_, title) in panels.items():
        ax = axes[r][c]
        image = ax.imshow(specs[(r, c)].numpy(), origin="lower", aspect="auto", cmap="magma",
                          vmin=top - DYNAMIC_RANGE_DB, vmax=top, extent=(0, seconds, 0, rate / 2))
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.set_ylabel("frequency (Hz)", fontsize=7)
        ax.tick_params(labelsize=6)
    for c in range(1, columns):  # the mixture row has one panel
        axes[0][c].axis("off")
    axes[0][1].text(0.0, 0.5, f"{item.id}: {seconds:.3f} s at {rate} Hz\nSTFT {N_FFT} points "
                    f"({1000 * N_FFT / rate:.0f} ms), hop {N_FFT // 4}", fontsize=8,
                    transform=axes[0][1].transAxes, va="center")
    assert image is not None
    bar = fig.colorbar(image, ax=axes, shrink=0.6, aspect=40)
    bar.set_label("magnitude (dB)", fontsize=8)
    fig.suptitle("true vs separated stems: spectrograms on one dB scale", fontsize=10)
    fig.savefig(path, dpi=100)


def write_outputs(out: Path, items: list[Any], recon: dict[str, dict[str, Tensor]], source: dict[str, Any]
                  ) -> dict[str, Any]:
    """The FLAC files, grids, ``listen.json`` and ``README.md``; returns the record."""
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"source": source, "pieces": {}}
    for item in items:
        rate, stems = int(item.sample_rate), list(item.channel_names)
        folder = out / item.id
        folder.mkdir(exist_ok=True)
        ref = item.signal.float()
        if not recon[item.id]:
            raise SystemExit(f"no reconstruction of {item.id} to write; check --labels and --results")
        clipped = {"mixture": write_flac(folder / "mixture.flac", ref.sum(0), rate)}
        for k, stem in enumerate(stems):
            clipped[f"reference_{stem}"] = write_flac(folder / f"reference_{stem}.flac", ref[k], rate)
        piece_scores = {}
        for label, x in recon[item.id].items():
            if tuple(x.shape) != tuple(ref.shape):
                raise SystemExit(f"{item.id} {label}: reconstruction of shape {tuple(x.shape)}, the "
                                 f"piece is {tuple(ref.shape)}")
            piece_scores[label] = scores(x, ref, rate, stems)
            name = safe(label)
            for k, stem in enumerate(stems):
                clipped[f"{name}_{stem}"] = write_flac(folder / f"{name}_{stem}.flac", x[k], rate)
        draw_grid(folder / "spectrograms.png", item, recon[item.id], piece_scores)
        record["pieces"][item.id] = {"seconds": ref.shape[-1] / rate, "sample_rate": rate,
                                     "stems": stems, "scores": piece_scores,
                                     "clipped_samples": {k: v for k, v in clipped.items() if v}}
    (out / "listen.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "README.md").write_text(readme(record))
    return record


def safe(label: str) -> str:
    """A label as a file-name part: letters, digits, ``-`` and ``.`` kept, the rest ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in label)


def readme(record: dict[str, Any]) -> str:
    src = record["source"]
    lines = ["# Separated stems to listen to", ""]
    if "results" in src:
        lines.append(f"From the sweep results `{src['results']}` (task {src['task']}, prior "
                     f"{src['prior']}, seed {src['seed']}): its reconstructions, nothing solved again.")
    else:
        lines.append(f"A fresh solve: prior `{json.dumps(src['prior'])}`, data `{json.dumps(src['data'])}`"
                     f", cut to {src['seconds']} s, seed {src['seed']}.")
    lines += ["", "Solvers: " + "; ".join(f"`{s['label']}` = {s['name']} {json.dumps(s['settings'])}"
                                            for s in src["solvers"]), ""]
    lines += ["Per piece `<piece>/`: `mixture.flac`, `reference_<stem>.flac`, `<label>_<stem>.flac` "
              "(24-bit FLAC at the signals' own scale) and `spectrograms.png`. SI-SNRi in dB over "
              "the whole excerpt, MSDM's protocol in brackets (4 s windows every 2 s, windows "
              "with at most one sounding stem skipped; `-`: no window kept).", ""]
    for piece, info in record["pieces"].items():
        stems = info["stems"]
        lines += [f"## {piece} ({info['seconds']:.3f} s)", "",
                  "| method | " + " | ".join(stems) + " | mean |",
                  "|---|" + "---|" * (len(stems) + 1)]
        for label, s in info["scores"].items():
            cells = [f"{fmt(s.get(f'si_snri/{st}'))} ({fmt(s.get(f'si_snri_msdm/{st}'))})" for st in stems]
            cells.append(f"{fmt(s.get('si_snri'))} ({fmt(s.get('si_snri_msdm'))})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if info["clipped_samples"]:
            lines += ["", "Clipped to [-1, 1] in the FLAC files: "
                      + ", ".join(f"{k} {v}" for k, v in info["clipped_samples"].items())]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the output folder's name")
    parser.add_argument("--out-root", default=str(ROOT / "benchmarks" / "results"),
                        help="where the <name> folder goes (default benchmarks/results)")
    parser.add_argument("--results", help="a sweep's results folder: its reconstructions")
    parser.add_argument("--prior-label", help="with --results: the reconstructions of this prior "
                        "of the sweep (default: its first)")
    parser.add_argument("--labels", help="with --results: these solver labels, comma-separated "
                                         "(default every solver with reconstructions)")
    parser.add_argument("--prior", help="fresh solve: a prior name or a TOML inline table")
    parser.add_argument("--solver", action="append", default=[],
                        help="fresh solve: a [[solvers]] entry as a TOML inline table (repeatable)")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help=f"fresh solve: [data] keys (default: {DEFAULT_DATA})")
    parser.add_argument("--seconds", type=float, help="fresh solve: cut each piece to this long")
    parser.add_argument("--seed", type=int, default=0, help="fresh solve: the seed (default 0)")
    parser.add_argument("--device", default="cpu", help="fresh solve: cpu or cuda")
    parser.add_argument("--pieces", type=int, default=2, help="the first N pieces (default 2)")
    parser.add_argument("--piece", action="append", help="a piece by id instead (repeatable)")
    args = parser.parse_args(argv)

    if bool(args.results) == bool(args.prior or args.solver):
        raise SystemExit("give either --results DIR (a sweep's reconstructions) or --prior and "
                         "--solver (a fresh solve)")
    if args.results:
        labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
        items, recon, source = from_results(Path(args.results), labels, args.pieces, args.piece,
                                            args.prior_label)
    else:
        if not args.prior or not args.solver:
            raise SystemExit("a fresh solve needs --prior and at least one --solver")
        solvers = [solver_entry(s) for s in args.solver]
        names = [s["label"] for s in solvers]
        if len(set(names)) != len(names):
            raise SystemExit(f"--solver labels must be unique, got {names}; give each a label = \"...\"")
        items, recon, source = fresh(prior_entry(args.prior), solvers, parse_table(args.data, "--data"),
                                     args.pieces, args.piece, args.seconds, args.seed, args.device)
    out = Path(args.out_root) / args.name
    record = write_outputs(out, items, recon, source)
    for piece, info in record["pieces"].items():
        means = ", ".join(f"{label} {fmt(s.get('si_snri'))} dB" for label, s in info["scores"].items())
        print(f"{piece}: {means}")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
