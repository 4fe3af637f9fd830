"""``pnpkit run``: a configured restoration over one item or a dataset, resumable.

The output folder holds, per item, ``items/<id>/`` with the reconstruction (PNG or WAV, and
the exact tensor as safetensors), the measurement, the reference, ``metrics.json``,
``history.json`` and ``figure.png``; at the top, ``config.toml`` / ``config.json`` (the
fully resolved configuration: running it again reproduces every result bit for bit on the
same machine), ``manifest.json`` (written after each finished item) and ``metrics.json``
(means and standard deviations). A run that is killed and started again skips the items the
manifest lists as finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from . import operators as ops
from .config import ConfigError, PipelineConfig, factory_defaults
from .data import Item, is_image_like, load_items, save_signal
from .metrics import compute
from .plugins import check_settings, get_manager
from .priors import torch_dtype


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False))
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written file


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


class Distributed:
    """The torch.distributed group of a ``torchrun`` launch (a single process otherwise)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owned = False
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
            self.owned = True

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            self.dist.barrier()

    def close(self) -> None:
        if self.owned:
            self.dist.destroy_process_group()


class Pipeline:
    """Builds the components a configuration names and runs them over its items."""

    def __init__(self, config: PipelineConfig, output: str | Path | None = None) -> None:
        self.config = config
        raw = config.raw
        self.output = Path(output or raw["output"])
        if not self.output.is_absolute() and output is None:
            self.output = config.base_dir / self.output
        self.group = Distributed()
        self.device = torch.device(raw["device"])
        if self.device.type == "cuda" and self.group.world > 1:
            self.device = torch.device("cuda", self.group.local_rank)  # one GPU per rank
        self.dtype = torch_dtype(raw["dtype"])
        manager = get_manager()
        self._op_component = manager.get("operator", raw["operator"]["name"])
        self._prior_component = manager.get("prior", raw["prior"]["name"])
        solver_cfg = dict(raw["solver"])
        solver_cls = manager.get("solver", solver_cfg["name"]).factory
        self.solver = solver_cls.from_dict(solver_cfg)
        self.op_settings = {k: v for k, v in raw["operator"].items() if k != "name"}
        check_settings(self._op_component.factory, self.op_settings,
                       f"operator {self._op_component.name!r}")
        self.prior_settings = {k: v for k, v in raw["prior"].items() if k != "name"}
        self.prior = self._build(self._prior_component, self.prior_settings, shape=None)
        self._operators: dict[tuple[int, ...], Any] = {}

    # -- components ---------------------------------------------------------------------------
    def _build(self, component: Any, settings: dict[str, Any], shape: tuple[int, ...] | None) -> Any:
        import inspect

        try:
            params = inspect.signature(component.factory).parameters
        except (TypeError, ValueError):
            params = {}
        extra: dict[str, Any] = {}
        if "shape" in params and shape is not None:
            extra["shape"] = shape
        if "device" in params:
            extra["device"] = str(self.device)
        if "dtype" in params:
            extra["dtype"] = self.config.raw["dtype"]
        return component.create(**settings, **extra)

    def operator_for(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._operators:
            self._operators[shape] = self._build(self._op_component, self.op_settings, shape)
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
        fingerprint = hashlib.sha256(json.dumps({k: v for k, v in resolved.items() if k != "output"},
                                                sort_keys=True).encode()).hexdigest()[:16]
        manifest_path = self.output / "manifest.json"
        done: dict[str, Any] = {}
        error: str | None = None
        if group.rank == 0:
            self.output.mkdir(parents=True, exist_ok=True)
            if manifest_path.exists() and overwrite:
                for shard in self.output.glob("manifest.rank*.json"):
                    shard.unlink()
            elif manifest_path.exists():
                old = json.loads(manifest_path.read_text())
                if old.get("fingerprint") != fingerprint:
                    error = (f"{self.output} holds a run of a different configuration; pass "
                             "--overwrite to replace it, or choose another output folder (-o DIR)")
                else:
                    done = old["items"]
            # Shards of an interrupted distributed run hold items finished since the merge.
            for shard in sorted(self.output.glob("manifest.rank*.json")):
                part = json.loads(shard.read_text())
                if part.get("fingerprint") == fingerprint:
                    done.update(part["items"])
        # Every rank learns what rank 0 found, so all stop together on a refused folder.
        error, done = group.gather((error, done))[0]
        if error:
            raise ConfigError(error)
        if group.rank == 0:
            _write_json(self.output / "config.json", resolved)
            import tomli_w

            (self.output / "config.toml").write_text(
                "# Fully resolved by pnpkit; `pnpkit run` on this file reproduces the run.\n"
                + tomli_w.dumps(_drop_none(resolved)))
            _write_json(manifest_path, {"fingerprint": fingerprint, "items": done})
        items = load_items(self.config.section("data"), self.config.base_dir)
        todo = [(i, it) for i, it in enumerate(items)
                if done.get(it.id, {}).get("status") != "done" and i % group.world == group.rank]
        shard_path = (manifest_path if group.world == 1
                      else self.output / f"manifest.rank{group.rank}.json")
        mine: dict[str, Any] = dict(done) if group.world == 1 else {}
        for index, item in tqdm(todo, desc=f"items (rank {group.rank})" if group.world > 1 else "items",
                                disable=not progress or len(items) < 2):
            mine[item.id] = self.solve_item(index, item, progress=progress and group.world == 1)
            _write_json(shard_path, {"fingerprint": fingerprint, "items": mine})
        merged = dict(done)
        for part in group.gather(mine):
            merged.update(part)
        summary = self.summarise({"items": merged}, [it.id for it in items])
        if group.rank == 0:
            _write_json(manifest_path, {"fingerprint": fingerprint, "items": merged})
            for shard in self.output.glob("manifest.rank*.json"):
                shard.unlink()
            _write_json(self.output / "metrics.json", summary)
        group.barrier()
        return summary

    def solve_item(self, index: int, item: Item, progress: bool = False) -> dict[str, Any]:
        from safetensors.torch import save_file

        from .figures import run_figure

        raw = self.config.raw
        x = item.signal[None].to(self.device, self.dtype)
        op = self.operator_for(tuple(item.signal.shape))
        generator = torch.Generator(device=self.device).manual_seed(int(raw["seed"]) + index)
        y = ops.measure(op, x, generator)
        start = time.perf_counter()
        result = self.solver.solve(y, op, self.prior, generator=generator, reference=x,
                                   progress=progress)
        # Audio metrics need the item's sample rate; per-stem values are named after its channels.
        measures = dict(sample_rate=item.sample_rate, channel_names=item.channel_names)
        metrics = {k: v[0] for k, v in compute(list(raw["metrics"]), result.x, x, **measures).items()}
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
            baseline = {k: v[0] for k, v in compute(list(raw["metrics"]), pinv.clamp(-1, 1), x,
                                                    **measures).items()}
            label = ", ".join(f"{k} {v:.2f}" for k, v in baseline.items() if "/" not in k)
            panels.append((f"pseudo-inverse ({label})", pinv[0]))
        label = f"{self.solver.name} ({', '.join(f'{k} {v:.2f}' for k, v in metrics.items() if '/' not in k)})"
        panels += [(label, result.x[0]), ("reference", x[0])]
        run_figure(folder / "figure.png", panels, result.history, item.kind, rate,
                   item.channel_names)
        record = {"status": "done", "index": index, "metrics": metrics,
                  "pseudo_inverse_metrics": baseline, "nfe": result.nfe,
                  "wall_time": result.wall_time, "iterations": result.iterations,
                  "seconds_total": time.perf_counter() - start}
        _write_json(folder / "history.json", result.history)
        _write_json(folder / "metrics.json", record)
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
