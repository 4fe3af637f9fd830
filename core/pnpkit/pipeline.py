"""``pnpkit run``: a configured restoration over one item or a dataset, resumable.

The output folder holds, per item, ``items/<id>/`` with the reconstruction (PNG or WAV, and
the exact tensor as safetensors), the measurement, the reference, ``metrics.json``,
``history.json`` and ``figure.png``; at the top, ``config.toml`` / ``config.json`` (the
fully resolved configuration: running it again reproduces every result bit for bit on the
same machine), ``manifest.json`` (written after each finished item) and ``metrics.json``
(means and standard deviations). A run that is killed and started again skips the items the
manifest lists as finished. The folder, its fingerprint and the atomic writes are
:mod:`pnpkit.runs`'s. ``figure.png`` is drawn by whichever plugin implements the
``render_item`` hook (``pnpkit-bench`` does); with none installed the figure is skipped.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from . import operators as ops
from .config import ConfigError, PipelineConfig, factory_defaults
from .data import Item, is_image_like, load_items, save_signal
from .metrics import compute
from .plugins import check_settings, get_manager
from .priors import torch_dtype
from .runs import Distributed, OutputFolder, fingerprint, write_json

if TYPE_CHECKING:
    from .solvers import Solver

__all__ = ["Distributed", "Pipeline", "run"]  # Distributed: re-exported from pnpkit.runs


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


class Pipeline:
    """Builds the components a configuration names and runs them over its items."""

    def __init__(self, config: PipelineConfig, output: str | Path | None = None) -> None:
        self.config = config
        raw = config.raw
        self.folder = OutputFolder.resolve(output, raw["output"], config.base_dir)
        self.output = self.folder.path
        self.group = Distributed()
        self.device = torch.device(raw["device"])
        if self.device.type == "cuda" and self.group.world > 1:
            self.device = torch.device("cuda", self.group.local_rank)  # one GPU per rank
        self.dtype = torch_dtype(raw["dtype"])
        manager = get_manager()
        self._op_component = manager.get("operator", raw["operator"]["name"])
        self._prior_component = manager.get("prior", raw["prior"]["name"])
        solver_cfg = dict(raw["solver"])
        solver_comp = manager.get("solver", solver_cfg["name"])
        # A qualified name (plugin:name) finds the component; the solver knows its bare name.
        solver_cls = cast("type[Solver]", solver_comp.factory)
        self.solver = solver_cls.from_dict({**solver_cfg, "name": solver_comp.name})
        self.op_settings = {k: v for k, v in raw["operator"].items() if k != "name"}
        check_settings(self._op_component.factory, self.op_settings,
                       f"operator {self._op_component.name!r}")
        self.prior_settings = {k: v for k, v in raw["prior"].items() if k != "name"}
        self.prior = self._prior_component.build(self.prior_settings, device=str(self.device),
                                                 dtype=raw["dtype"])
        self._operators: dict[tuple[int, ...], Any] = {}

    # -- components ---------------------------------------------------------------------------
    def operator_for(self, shape: tuple[int, ...]) -> Any:
        """The configured operator for items of ``shape`` (C, *spatial), built once per shape."""
        if shape not in self._operators:
            self._operators[shape] = self._op_component.build(
                self.op_settings, shape=shape, device=str(self.device), dtype=self.config.raw["dtype"])
        return self._operators[shape]

    def resolved(self) -> dict[str, Any]:
        """The configuration with every default written out."""
        raw = json.loads(json.dumps(self.config.raw))
        raw["operator"] = {"name": self._op_component.name,
                           **factory_defaults(self._op_component.factory), **self.op_settings}
        raw["prior"] = {"name": self._prior_component.name,
                        **factory_defaults(self._prior_component.factory), **self.prior_settings}
        raw["solver"] = self.solver.to_dict()
        raw["output"] = str(self.output)
        return raw

    # -- running -----------------------------------------------------------------------------
    def run(self, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
        """Solve every item not yet finished; return the aggregate metrics."""
        try:
            return self._run(overwrite, progress)
        finally:
            self.group.close()

    def _run(self, overwrite: bool, progress: bool) -> dict[str, Any]:
        from tqdm.auto import tqdm

        group = self.group
        resolved = self.resolved()
        stamp = fingerprint(resolved)
        manifest_path = self.folder.stamp
        done: dict[str, Any] = {}
        error: str | None = None
        if group.rank == 0:
            try:
                old = self.folder.claim(stamp, overwrite)
            except ConfigError as exc:
                error = str(exc)
            else:
                if overwrite and manifest_path.exists():
                    self.folder.remove("manifest.rank*.json")
                done = dict(old["items"]) if old else {}
            # Shards of an interrupted distributed run hold items finished since the merge.
            for shard in sorted(self.output.glob("manifest.rank*.json")) if error is None else []:
                part = json.loads(shard.read_text())
                if part.get("fingerprint") == stamp:
                    done.update(part["items"])
        # Every rank learns what rank 0 found, so all stop together on a refused folder.
        error, done = group.gather((error, done))[0]
        if error:
            raise ConfigError(error)
        if group.rank == 0:
            write_json(self.output / "config.json", resolved)
            import tomli_w

            (self.output / "config.toml").write_text(
                "# Fully resolved by pnpkit; `pnpkit run` on this file reproduces the run.\n"
                + tomli_w.dumps(_drop_none(resolved)))
            write_json(manifest_path, {"fingerprint": stamp, "items": done})
        items = load_items(self.config.section("data"), self.config.base_dir)
        todo = [(i, it) for i, it in enumerate(items)
                if done.get(it.id, {}).get("status") != "done" and i % group.world == group.rank]
        shard_path = (manifest_path if group.world == 1
                      else self.output / f"manifest.rank{group.rank}.json")
        mine: dict[str, Any] = dict(done) if group.world == 1 else {}
        for index, item in tqdm(todo, desc=f"items (rank {group.rank})" if group.world > 1 else "items",
                                disable=not progress or len(items) < 2):
            mine[item.id] = self.solve_item(index, item, progress=progress and group.world == 1)
            write_json(shard_path, {"fingerprint": stamp, "items": mine})
        merged = dict(done)
        for part in group.gather(mine):
            merged.update(part)
        summary = self.summarise({"items": merged}, [it.id for it in items])
        if group.rank == 0:
            write_json(manifest_path, {"fingerprint": stamp, "items": merged})
            self.folder.remove("manifest.rank*.json")
            write_json(self.output / "metrics.json", summary)
        group.barrier()
        return summary

    def solve_item(self, index: int, item: Item, progress: bool = False) -> dict[str, Any]:
        from safetensors.torch import save_file

        raw = self.config.raw
        x = item.signal[None].to(self.device, self.dtype)
        op = self.operator_for(tuple(item.signal.shape))
        generator = torch.Generator(device=self.device).manual_seed(int(raw["seed"]) + index)
        y = ops.measure(op, x, generator)
        start = time.perf_counter()
        result = self.solver.solve(y, op, self.prior, generator=generator, reference=x,
                                   progress=progress)
        # Audio metrics need the item's sample rate; per-stem values are named after its channels.
        def score(estimate: torch.Tensor) -> dict[str, float]:
            return {k: v[0] for k, v in compute(list(raw["metrics"]), estimate, x,
                                                sample_rate=item.sample_rate,
                                                channel_names=item.channel_names).items()}

        metrics = score(result.x)
        folder = self.output / "items" / item.id
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"reconstruction": result.x[0].contiguous(), "reference": x[0].contiguous()}
        if not y.is_complex():
            tensors["measurement"] = y[0].contiguous()
        save_file({k: v.detach().cpu() for k, v in tensors.items()}, folder / "tensors.safetensors")
        rate = item.sample_rate
        save_signal(result.x[0], folder / "reconstruction", item.kind, rate)
        if item.kind == "audio" and item.channel_names:  # separated sources: a WAV per stem too
            for c, stem in enumerate(item.channel_names):
                save_signal(result.x[0, c:c + 1], folder / f"reconstruction_{stem}", "audio", rate)
        save_signal(x[0], folder / "reference", item.kind, rate)
        panels = []
        if not y.is_complex() and (is_image_like(y[0]) if item.kind == "image" else y.dim() == 3):
            save_signal(y[0], folder / "measurement", item.kind, rate)
            panels.append(("measurement", y[0]))
        baseline: dict[str, float] = {}
        try:
            pinv = ops.pseudo_inverse(op, y)
        except Exception:  # operators without a usable A_dagger: no panel, nothing lost
            pinv = None
        if pinv is not None and pinv.shape == x.shape:
            baseline = score(pinv.clamp(-1, 1))
            label = ", ".join(f"{k} {v:.2f}" for k, v in baseline.items() if "/" not in k)
            panels.append((f"pseudo-inverse ({label})", pinv[0]))
        scores = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if "/" not in k)
        label = f"{self.solver.name} ({scores})"
        panels += [(label, result.x[0]), ("reference", x[0])]
        # Drawing is a plugin's (pnpkit-bench): the core does not depend on matplotlib.
        get_manager().pm.hook.render_item(path=folder / "figure.png", panels=panels,
                                          history=result.history, kind=item.kind,
                                          sample_rate=rate, channel_names=item.channel_names)
        record = {"status": "done", "index": index, "metrics": metrics,
                  "pseudo_inverse_metrics": baseline, "nfe": result.nfe,
                  "wall_time": result.wall_time, "iterations": result.iterations,
                  "seconds_total": time.perf_counter() - start}
        write_json(folder / "history.json", result.history)
        write_json(folder / "metrics.json", record)
        return record

    @staticmethod
    def summarise(manifest: dict[str, Any], ids: list[str]) -> dict[str, Any]:
        done = [manifest["items"][i] for i in ids if i in manifest["items"]]
        names = sorted({k for r in done for k in r["metrics"]}) + ["nfe", "wall_time"]
        mean, std = {}, {}
        for name in names:
            vals = [r["metrics"][name] if name in r["metrics"] else r[name] for r in done]
            vals = [v for v in vals if v == v]  # NaN: no value for that item (si_snri_msdm, no window kept)
            mean[name] = statistics.fmean(vals) if vals else None
            std[name] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
        return {"items": len(done), "mean": mean, "std": std,
                "per_item": {i: manifest["items"][i]["metrics"] for i in ids if i in manifest["items"]}}


def run(config: PipelineConfig, output: str | Path | None = None, overwrite: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Run a validated configuration (see :mod:`pnpkit.config`)."""
    return Pipeline(config, output).run(overwrite=overwrite, progress=progress)
