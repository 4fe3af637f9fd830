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

With ``[data] measurement`` the items are the user's own measurements, restored at their own
size (:mod:`pnpkit.measured`); without a reference, ``metrics.json`` holds the data residual,
the discrepancy against ``sigma_y``, NFE and time. Every input is read and checked (files,
shapes, kernels, masks, tiles, windows) before the output folder is created, so bad input
leaves nothing behind.
"""

from __future__ import annotations

import inspect
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from . import operators as ops
from .config import ConfigError, PipelineConfig, check_setting_types, factory_defaults
from .data import Item, Measured, is_image_like, load_items, load_measurements, save_signal
from .metrics import compute
from .plugins import check_settings, get_manager
from .priors import torch_dtype
from .runs import Distributed, OutputFolder, check_device, environment, fingerprint, read_json, write_json
from .solvers.base import is_finite

if TYPE_CHECKING:
    from .solvers import Solver

__all__ = ["Distributed", "Pipeline", "run"]  # Distributed: re-exported from pnpkit.runs

#: Operator settings that name files: relative paths are relative to the configuration file.
PATH_SETTINGS = ("kernel", "mask")
#: The statuses of an item that is not solved again on resume.
FINISHED = ("done", "diverged")


def _diverged_at(x: torch.Tensor, reported: int | None, iterations: int) -> int | None:
    """The iteration a solve diverged at: the solver's word, else (a solver outside the shared
    loop) its last iteration when its estimate is not finite."""
    if reported is not None:
        return int(reported)
    return None if is_finite(x) else int(iterations)


def _diverged_note(diverged_at: int | None) -> str:
    return "" if diverged_at is None else f"diverged at iteration {diverged_at}; "


def build(component: Any, settings: dict[str, Any], **context: Any) -> Any:
    """Build a registered operator or prior; a factory that fails is one line naming it.

    Settings of the wrong type are refused first (:func:`pnpkit.config.check_setting_types`);
    a factory's own ``ValueError`` / ``LookupError`` / ``OSError`` is its message, anything
    else it raises is named with its plugin and the command that shows its settings.
    """
    where = f"{component.kind} {component.name!r}"
    check_setting_types(component.factory, settings, f"[{component.kind}] ({where})")
    try:
        return component.build(settings, **context)
    except (ValueError, LookupError, OSError):
        raise
    except Exception as exc:
        if isinstance(exc, TypeError) and str(exc).startswith("unknown setting"):
            raise
        raise ValueError(f"{where} (plugin {component.plugin!r}) failed to build: "
                         f"{type(exc).__name__}: {exc}; check its settings (`pnpkit show "
                         f"{component.kind} {component.name}`)") from None


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def _stem_titles(solver: str, metrics: dict[str, float], stems: list[str] | None) -> list[str] | None:
    """Per stem, the figure title ``"<solver> (<metric> <that stem's value>, ...)"``; None
    without per-stem metrics (the figure then titles every stem with the mean)."""
    if not stems or not any(k.endswith(f"/{s}") for k in metrics for s in stems):
        return None
    return [f"{solver} (" + ", ".join(f"{k.split('/')[0]} {v:.2f}" for k, v in metrics.items()
                                      if k.endswith(f"/{s}")) + ")" for s in stems]


class Pipeline:
    """Builds the components a configuration names and runs them over its items."""

    def __init__(self, config: PipelineConfig, output: str | Path | None = None) -> None:
        self.config = config
        raw = config.raw
        self.folder = OutputFolder.resolve(output, raw["output"], config.base_dir)
        self.output = self.folder.path
        self.group = Distributed()
        self.device = check_device(raw["device"])
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
        for key in PATH_SETTINGS:
            value = self.op_settings.get(key)
            if isinstance(value, str) and Path(value).suffix and not Path(value).is_absolute():
                self.op_settings[key] = str((config.base_dir / value).resolve())
        check_settings(self._op_component.factory, self.op_settings,
                       f"operator {self._op_component.name!r}")
        check_setting_types(self._op_component.factory, self.op_settings,
                            f"[operator] (operator {self._op_component.name!r})")
        self.prior_settings = {k: v for k, v in raw["prior"].items() if k != "name"}
        # Tiling is the pipeline's, not the prior factory's: popped here, the prior wrapped.
        self.tiling = {k: self.prior_settings.pop(k) for k in ("tile", "overlap")
                       if k in self.prior_settings}
        self.base_prior = build(self._prior_component, self.prior_settings,
                                device=str(self.device), dtype=raw["dtype"])
        if raw.get("precision"):  # the network under autocast; the solver stays in dtype
            self.base_prior.precision = raw["precision"]
        self.prior = self.base_prior
        if "tile" in self.tiling:
            from .tiling import tiled

            self.prior = tiled(self.base_prior, **self.tiling)
        self._operators: dict[tuple[int, ...], Any] = {}

    # -- components ---------------------------------------------------------------------------
    def operator_for(self, shape: tuple[int, ...]) -> Any:
        """The configured operator for items of ``shape`` (C, *spatial), built once per shape."""
        if shape not in self._operators:
            self._operators[shape] = build(self._op_component, self.op_settings, shape=shape,
                                           device=str(self.device), dtype=self.config.raw["dtype"])
        return self._operators[shape]

    def resolved(self) -> dict[str, Any]:
        """The configuration with every default written out."""
        raw = json.loads(json.dumps(self.config.raw))
        raw["operator"] = {"name": self._op_component.name,
                           **factory_defaults(self._op_component.factory), **self.op_settings}
        raw["prior"] = {"name": self._prior_component.name,
                        **factory_defaults(self._prior_component.factory), **self.prior_settings,
                        **self.tiling}
        data = raw["data"]
        for key in ("measurement", "reference"):  # absolute: out/config.toml runs from anywhere
            if key in data:
                spec = data[key]
                data[key] = ([self._absolute(v) for v in spec] if isinstance(spec, list)
                             else self._absolute(spec))
        raw["solver"] = self.solver.to_dict()
        raw["output"] = str(self.output)
        return raw

    def _absolute(self, path: str) -> str:
        return path if Path(path).is_absolute() else str(self.config.base_dir / path)

    def prepare(self) -> list[tuple[Item | Measured, Any]]:
        """Read every item and check it against the operator and prior, building nothing on disk.

        :return: ``(item, plan)`` pairs; the plan is None for simulated items.
        :raises ValueError: one line naming the file and the fix, for any bad input.
        """
        from . import measured

        data = self.config.section("data")
        out: list[tuple[Item | Measured, Any]] = []
        prior_rate = getattr(self.base_prior, "sample_rate", None)
        if prior_rate and data.get("sample_rate") and data["sample_rate"] != prior_rate:
            raise ConfigError(f"[data] sample_rate = {data['sample_rate']}, but prior "
                              f"{self._prior_component.name!r} works at {prior_rate} Hz; set "
                              f"sample_rate = {prior_rate} or drop it (files are resampled to the "
                              "prior's rate)")
        if "measurement" not in data:
            for item in load_items(data, self.config.base_dir, prior_rate):
                self._check_prior(f"item {item.id!r}", item.kind, tuple(item.signal.shape), True)
                self._check_tile(tuple(item.signal.shape[1:]))
                self._check_memory(tuple(item.signal.shape))
                self.operator_for(tuple(item.signal.shape))  # kernel / mask errors surface now
                out.append((item, None))
            return out
        rate = getattr(self.base_prior, "sample_rate", None) or data.get("sample_rate")
        items = load_measurements(data, self.config.base_dir, rate)
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"measurements need distinct file names (the item ids); duplicates: "
                             f"{sorted({i for i in ids if ids.count(i) > 1})}")
        for one in items:
            how = measured.plan(one, self._op_component, self.op_settings, self.base_prior,
                                self.operator_for, float(data.get("overlap", 1.0)))
            if one.kind == "image":
                self._check_prior(str(one.path), one.kind, tuple(how.signal_shape), False)
                self._check_tile(how.signal_shape[1:])
            self._check_memory(tuple(how.signal_shape))
            out.append((one, how))
        return out

    def _check_prior(self, what: str, kind: str, shape: tuple[int, ...], simulated: bool) -> None:
        """Pictures the prior cannot take (another channel count; another size than a prior
        of one fixed size runs at) are refused here, before anything is written, with hints
        that work."""
        if kind != "image":
            return
        from .measured import prior_channels

        name = self._prior_component.name
        want = prior_channels(self.base_prior)
        if want is not None and shape[0] != want:
            fix = (f"set [data] channels = {want}" if simulated or want == 1
                   else f"give a {want}-channel measurement or use a {shape[0]}-channel prior")
            raise ValueError(f"{what}: {shape[0]}-channel pictures, but prior {name!r} models "
                             f"{want}-channel ones; {fix}")
        fixed = getattr(self.base_prior, "fixed_shape", None)
        if not fixed or len(fixed) != len(shape) - 1:
            return
        fixed = tuple(int(f) for f in fixed)
        size = " x ".join(map(str, fixed))
        if "tile" in self.tiling:
            tile = int(self.tiling["tile"])
            if (tile,) * len(fixed) != fixed:
                fix = f"set tile = {fixed[0]}" if len(set(fixed)) == 1 else "drop tile"
                raise ValueError(f"[prior] tile = {tile}, but prior {name!r} runs at {size} only; {fix}")
            return
        if tuple(shape[1:]) != fixed:
            hints = []
            if simulated and len(set(fixed)) == 1:
                hints.append(f"resize the data ([data] size = {fixed[0]})")
            if len(set(fixed)) == 1:
                hints.append(f"run it on tiles of its size ([prior] tile = {fixed[0]})")
            if "check_size" in inspect.signature(self._prior_component.factory).parameters:
                hints.append("let it run at any size ([prior] check_size = false)")
            raise ValueError(f"{what}: {' x '.join(map(str, shape[1:]))} pictures, but prior "
                             f"{name!r} runs at {size} only; " + ", or ".join(hints))

    def _check_tile(self, spatial: tuple[int, ...]) -> None:
        if "tile" in self.tiling:
            from .tiling import check_tile

            tile = int(self.tiling["tile"])
            check_tile(tile, int(self.tiling.get("overlap", tile // 4)), spatial)

    def _check_memory(self, shape: tuple[int, ...]) -> None:
        """A prior that can tell (``check_memory``) refuses a network call that cannot fit in
        free memory, before anything runs: one item without gradients, at the size its network
        sees (the whole signal, its fixed window, or the tile)."""
        check = getattr(self.base_prior, "check_memory", None)
        if check is None:
            return
        spatial = tuple(shape[1:])
        fixed = getattr(self.base_prior, "fixed_shape", None)
        if "tile" in self.tiling:
            spatial = (int(self.tiling["tile"]),) * len(spatial)
        elif fixed is not None and len(fixed) == len(spatial):
            spatial = tuple(fixed)
        check((1, shape[0], *spatial), grad=False)

    # -- running -----------------------------------------------------------------------------
    def run(self, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
        """Solve every item not yet finished; return the aggregate metrics."""
        try:
            return self._run(overwrite, progress)
        finally:
            self.folder.release()
            self.group.close()

    def _run(self, overwrite: bool, progress: bool) -> dict[str, Any]:
        from tqdm.auto import tqdm

        group = self.group
        resolved = self.resolved()
        work = self.prepare()  # bad input stops here, before the folder exists
        for item, _ in work:
            for note in getattr(item, "notes", ()):
                if group.rank == 0:
                    print(f"pnpkit: {note}", file=sys.stderr)
        stamp = fingerprint(resolved)
        env = environment(self.device)
        manifest_path = self.folder.stamp
        done: dict[str, Any] = {}
        error: str | None = None
        if group.rank == 0:
            error, done = self._claim(stamp, env, overwrite)
        # Every rank learns what rank 0 found, so all stop together on a refused folder.
        error, done = group.gather((error, done))[0]
        if error:
            raise ConfigError(error)
        if group.rank == 0:
            write_json(self.output / "config.json", {**resolved, "environment": env})
            import tomli_w

            (self.output / "config.toml").write_text(
                "# Fully resolved by pnpkit; `pnpkit run` on this file reproduces the run.\n"
                "# Computed with " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".\n"
                + tomli_w.dumps(_drop_none(resolved)))
            write_json(manifest_path, {"fingerprint": stamp, "environment": env, "items": done})
        items = [it for it, _ in work]
        todo = [(i, it) for i, it in enumerate(items)
                if done.get(it.id, {}).get("status") not in FINISHED and i % group.world == group.rank]
        shard_path = (manifest_path if group.world == 1
                      else self.output / f"manifest.rank{group.rank}.json")
        mine: dict[str, Any] = dict(done) if group.world == 1 else {}
        # Under torchrun only rank 0 shows progress (its share of the items).
        shown = progress and group.rank == 0
        for index, item in tqdm(todo, desc="items", disable=not shown or len(items) < 2):
            bar = shown and group.world == 1
            mine[item.id] = (self.solve_measured(index, item, work[index][1], progress=bar)
                             if isinstance(item, Measured) else
                             self.solve_item(index, item, progress=bar))
            write_json(shard_path, {"fingerprint": stamp, "environment": env, "items": mine})
        merged = dict(done)
        for part in group.gather(mine):
            merged.update(part)
        summary = self.summarise({"items": merged}, [it.id for it in items])
        if group.rank == 0:
            write_json(manifest_path, {"fingerprint": stamp, "environment": env, "items": merged})
            self.folder.remove("manifest.rank*.json")
            write_json(self.output / "metrics.json", summary)
        group.barrier()
        return summary

    def _claim(self, stamp: str, env: dict[str, Any], overwrite: bool) -> tuple[str | None, dict[str, Any]]:
        """Rank 0: lock the folder and read what it holds; (the refusal, or None; finished items)."""
        manifest_path = self.folder.stamp
        existed = manifest_path.exists()
        try:
            old = self.folder.claim(stamp, overwrite, environment=env,
                                    finished=lambda m: bool(m.get("items")))
        except ConfigError as exc:
            return str(exc), {}
        if old is None and existed:
            # Afresh over an earlier run (--overwrite, or one that finished nothing): none of
            # its items may stay beside the new results.
            self.folder.remove("manifest.rank*.json", "metrics.json")
            shutil.rmtree(self.output / "items", ignore_errors=True)
        done = dict(old["items"]) if old else {}
        # Shards of an interrupted distributed run hold items finished since the merge.
        for shard in sorted(self.output.glob("manifest.rank*.json")):
            part = read_json(shard, "remove it (its items are computed again)")
            if isinstance(part, dict) and part.get("fingerprint") == stamp:
                done.update(part["items"])
        return None, done

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
        diverged_at = _diverged_at(result.x, getattr(result, "diverged_at", None), result.iterations)
        if not is_finite(result.x):
            return self._no_estimate(index, item.id, diverged_at, result.history, start,
                                     nfe=result.nfe, wall_time=result.wall_time)
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
                save_signal(x[0, c:c + 1], folder / f"reference_{stem}", "audio", rate)
        save_signal(x[0], folder / "reference", item.kind, rate)
        panels: list[tuple[Any, torch.Tensor]] = []  # (title or one per stem, signal)
        if not y.is_complex() and (is_image_like(y[0]) if item.kind == "image" else y.dim() == 3):
            # An operator that changes the rate says its measurement's (pnpkit.operators).
            save_signal(y[0], folder / "measurement", item.kind, ops.measurement_rate(op, rate))
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
        label = f"{self.solver.name} ({_diverged_note(diverged_at)}{scores})"
        stems = item.channel_names if item.kind == "audio" and result.x.shape[1] > 1 else None
        panels += [(_stem_titles(self.solver.name, metrics, stems) or label, result.x[0]),
                   ("reference", x[0])]
        # Drawing is a plugin's (pnpkit-bench): the core does not depend on matplotlib.
        get_manager().pm.hook.render_item(path=folder / "figure.png", panels=panels,
                                          history=result.history, kind=item.kind,
                                          sample_rate=rate, channel_names=item.channel_names)
        record = {"status": "done", "index": index, "metrics": metrics,
                  "pseudo_inverse_metrics": baseline, "nfe": result.nfe,
                  "wall_time": result.wall_time, "iterations": result.iterations,
                  "seconds_total": time.perf_counter() - start}
        if diverged_at is not None:  # the last finite iterate, kept but never averaged
            record.update(status="diverged", diverged_at=diverged_at)
        write_json(folder / "history.json", result.history)
        write_json(folder / "metrics.json", record)
        return record

    def solve_measured(self, index: int, item: Measured, how: Any, progress: bool = False
                       ) -> dict[str, Any]:
        """Solve one measured item (see :mod:`pnpkit.measured`) and write its outputs."""
        from safetensors.torch import save_file

        from .measured import self_metrics, solve, stem_names, to_rate

        raw = self.config.raw
        y = item.measurement[None].to(self.device, self.dtype)
        solve_rate, rate, length = item.solve_rate, item.output_rate, item.output_length
        ref = None if item.reference is None else item.reference[None].to(self.device, self.dtype)
        start = time.perf_counter()
        x, info = solve(self.solver, self.prior, y, how, int(raw["seed"]) + index,
                        reference=ref if ref is not None and ref.shape[1:] == how.signal_shape
                        else None, progress=progress)
        diverged_at = _diverged_at(x, info.get("diverged_at"), info["iterations"])
        if not is_finite(x):
            return self._no_estimate(index, item.id, diverged_at, info["history"], start,
                                     nfe=info["nfe"], wall_time=info["wall_time"])
        metrics = self_metrics(how.op, x, y)
        # Audio solved at the prior's rate comes back at the file's rate, at its full length.
        x_out = to_rate(x, solve_rate, rate, length)
        names = stem_names(self.base_prior, x.shape[1]) if item.kind == "audio" else None

        def score(estimate: torch.Tensor) -> dict[str, float]:
            if ref is None:
                return {}
            return {k: v[0] for k, v in compute(list(raw["metrics"]), estimate, ref,
                                                sample_rate=rate, channel_names=names).items()}

        metrics = {**score(x_out), **metrics}
        folder = self.output / "items" / item.id
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"reconstruction": x_out[0].contiguous(), "measurement": y[0].contiguous()}
        if ref is not None:
            tensors["reference"] = ref[0].contiguous()
        save_file({k: v.detach().cpu() for k, v in tensors.items()}, folder / "tensors.safetensors")
        save_signal(x_out[0], folder / "reconstruction", item.kind, rate)
        if item.kind == "audio" and names is not None and x.shape[1] > 1:
            for c, stem in enumerate(names):
                save_signal(x_out[0, c:c + 1], folder / f"reconstruction_{stem}", "audio", rate)
                if ref is not None and ref.shape[1] == x.shape[1]:
                    save_signal(ref[0, c:c + 1], folder / f"reference_{stem}", "audio", rate)
        shown = item.original if item.original is not None else item.measurement
        panels: list[tuple[Any, torch.Tensor]] = []  # (title or one per stem, signal)
        if item.kind == "audio" or is_image_like(y[0]):
            save_signal(shown, folder / "measurement", item.kind, item.sample_rate)
            panels.append(("measurement", y[0]))
        if ref is not None:
            save_signal(ref[0], folder / "reference", item.kind, rate)
        baseline: dict[str, float] = {}
        try:
            pinv = ops.pseudo_inverse(how.op, y)
        except Exception:  # operators without a usable A_dagger: no panel, nothing lost
            pinv = None
        if pinv is not None and pinv.shape == x.shape:
            baseline = {**score(to_rate(pinv.clamp(-1, 1), solve_rate, rate, length)),
                        **self_metrics(how.op, pinv.clamp(-1, 1), y)}
            panels.append(("A^+ y", pinv[0]))
        # The title stays short: the reference metrics, else the data residual.
        scores = ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()
                           if "/" not in k and not k.startswith("discrepancy"))
        panels.append((_stem_titles(self.solver.name, metrics, names if x.shape[1] > 1 else None)
                       or f"{self.solver.name} ({_diverged_note(diverged_at)}{scores})", x[0]))
        if ref is not None and ref.shape == x.shape:
            panels.append(("reference", ref[0]))
        get_manager().pm.hook.render_item(path=folder / "figure.png", panels=panels,
                                          history=info["history"], kind=item.kind,
                                          sample_rate=solve_rate, channel_names=names)
        record: dict[str, Any] = {
                  "status": "done", "index": index, "metrics": metrics,
                  "pseudo_inverse_metrics": baseline, "nfe": info["nfe"],
                  "wall_time": info["wall_time"], "iterations": info["iterations"],
                  "seconds_total": time.perf_counter() - start,
                  "measurement": str(item.path), "sigma_y": ops.noise_sigma(how.op),
                  "measurement_shape": list(y.shape[1:]), "signal_shape": list(how.signal_shape),
                  **{k: info[k] for k in ("windows", "window", "overlap") if k in info}}
        if item.kind == "audio":
            record.update(sample_rate=item.sample_rate, solve_rate=solve_rate, output_rate=rate)
        if diverged_at is not None:  # the last finite iterate, kept but never averaged
            record.update(status="diverged", diverged_at=diverged_at,
                          **({"diverged_window": info["diverged_window"]}
                             if "diverged_window" in info else {}))
        write_json(folder / "history.json", info["history"])
        write_json(folder / "metrics.json", record)
        return record

    def _no_estimate(self, index: int, item_id: str, diverged_at: int | None,
                     history: list[dict[str, Any]], start: float, **info: Any) -> dict[str, Any]:
        """A solver outside the shared loop returned a non-finite estimate: nothing to save but
        the record (status ``diverged``) and the history."""
        folder = self.output / "items" / item_id
        folder.mkdir(parents=True, exist_ok=True)
        record = {"status": "diverged", "diverged_at": diverged_at, "index": index, "metrics": {},
                  "iterations": diverged_at, "seconds_total": time.perf_counter() - start, **info}
        write_json(folder / "history.json", history)
        write_json(folder / "metrics.json", record)
        return record

    @staticmethod
    def summarise(manifest: dict[str, Any], ids: list[str]) -> dict[str, Any]:
        """Means and standard deviations over the finished items (status ``done``).

        Diverged items are listed apart (``diverged``: item -> the iteration it diverged at)
        and never averaged. A metric with no value for an item (NaN: ``si_snri_msdm`` when the
        protocol keeps no window) is averaged over the others; ``count`` says over how many.
        """
        entries = {i: manifest["items"][i] for i in ids if i in manifest["items"]}
        done = [r for r in entries.values() if r.get("status", "done") == "done"]
        diverged = {i: r.get("diverged_at") for i, r in entries.items() if r.get("status") == "diverged"}
        names = sorted({k for r in done for k in r["metrics"]}) + ["nfe", "wall_time"]
        mean, std, count = {}, {}, {}
        for name in names:
            vals = [r["metrics"][name] if name in r["metrics"] else r.get(name) for r in done]
            vals = [v for v in vals if v is not None and v == v]
            mean[name] = statistics.fmean(vals) if vals else None
            std[name] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
            count[name] = len(vals)
        return {"items": len(done), "diverged": diverged, "mean": mean, "std": std, "count": count,
                "per_item": {i: r["metrics"] for i, r in entries.items()
                             if r.get("status", "done") == "done"}}


def run(config: PipelineConfig, output: str | Path | None = None, overwrite: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Run a validated configuration (see :mod:`pnpkit.config`)."""
    return Pipeline(config, output).run(overwrite=overwrite, progress=progress)
