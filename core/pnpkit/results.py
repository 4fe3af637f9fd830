"""Read a finished ``pnpkit run`` back, for a notebook: :func:`load_run`.

A run's output folder (see :mod:`pnpkit.pipeline`) holds the fully resolved configuration
(``config.json``), the summary (``metrics.json``: mean, std and per-item scores), the
manifest of the finished items (``manifest.json``) and, per item, ``items/<id>/`` with its
``metrics.json`` record, ``history.json`` and the exact tensors (``tensors.safetensors``:
``reconstruction``, ``measurement`` and, where there is one, ``reference``, each shaped
(C, *spatial), without the batch axis). :func:`load_run` gathers them::

    run = pnpkit.load_run("runs/demo")
    run.config["solver"]                     # the solver's resolved settings
    run.metrics["mean"]["psnr"]              # the summary of every item
    item = run.items["camera"]
    item.metrics["psnr"], item.nfe           # that item's scores and network calls
    item.reconstruction.shape                # torch.Size([1, 512, 512])
    [h["residual"] for h in item.history]    # the convergence record

The tensors are read from disk the first time an item's ``tensors`` are asked for.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Run", "RunItem", "load_run"]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); was the run interrupted while "
                         f"writing it? Run `pnpkit run` on the folder's config.toml again") from None


@dataclass
class RunItem:
    """One finished item of a run.

    :ivar str id: the item's id (its folder under ``items/``).
    :ivar dict record: its ``metrics.json``: ``metrics``, ``pseudo_inverse_metrics``, ``nfe``,
        ``wall_time``, ``iterations``, ...
    :ivar list history: its ``history.json``, one record per logged stage of the solve.
    :ivar pathlib.Path path: its folder.
    """

    id: str
    record: dict[str, Any]
    history: list[dict[str, Any]]
    path: Path

    @property
    def metrics(self) -> dict[str, Any]:
        """The item's scores (``{"psnr": ..., ...}``)."""
        return dict(self.record.get("metrics", {}))

    @property
    def nfe(self) -> int | None:
        """The prior's network evaluations for this item."""
        return self.record.get("nfe")

    @functools.cached_property
    def tensors(self) -> dict[str, Any]:
        """The exact tensors the run saved (``reconstruction``, ``measurement``, ``reference``)."""
        from safetensors.torch import load_file

        path = self.path / "tensors.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; run `pnpkit run` on the folder's "
                                    f"config.toml again to write it")
        return load_file(str(path))

    @property
    def reconstruction(self) -> Any:
        """The result, (C, *spatial), in pnpkit's range [-1, 1]."""
        return self.tensors["reconstruction"]

    @property
    def measurement(self) -> Any:
        """The measurement ``y`` the solver was given (no batch axis)."""
        return self.tensors.get("measurement")

    @property
    def reference(self) -> Any:
        """The clean reference, or None for a measurement given without one."""
        return self.tensors.get("reference")

    def __repr__(self) -> str:
        scores = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items()
                           if isinstance(v, (int, float)))
        return f"RunItem({self.id!r}, {scores or 'no metrics'}, nfe={self.nfe})"


@dataclass
class Run:
    """A run read back by :func:`load_run`.

    :ivar pathlib.Path path: the output folder.
    :ivar dict config: the fully resolved configuration (``config.json``).
    :ivar dict metrics: the summary (``metrics.json``: ``items``, ``mean``, ``std``,
        ``per_item``); empty while the run has not finished.
    :ivar dict items: item id -> :class:`RunItem`, for every finished item, in run order.
    """

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    items: dict[str, RunItem] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether every item ran (the summary ``metrics.json`` was written)."""
        return bool(self.metrics)

    def __repr__(self) -> str:
        mean = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.get("mean", {}).items()
                         if isinstance(v, (int, float)))
        solver = self.config.get("solver", {}).get("name", "?")
        state = mean if self.finished else "not finished"
        return f"Run({str(self.path)!r}, solver={solver!r}, {len(self.items)} item(s): {state})"


def load_run(folder: str | Path) -> Run:
    """Read the output folder of a ``pnpkit run``: configuration, metrics, per-item tensors.

    :param folder: the run's output folder (the configuration's ``output``, or ``-o DIR``).
    :return: a :class:`Run`; ``run.items[id].reconstruction`` is the exact saved tensor.
    :raises FileNotFoundError: when ``folder`` is not a run's output folder (the message says
        what is missing).
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {str(path)!r} does not exist; give the output folder "
                                f"of a `pnpkit run` (the configuration's output, or -o DIR)")
    for name in ("manifest.json", "config.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a pnpkit run folder (it has no {name}); give "
                                    f"the output folder of a `pnpkit run`")
    manifest = _read(path / "manifest.json")
    config = _read(path / "config.json")
    summary = _read(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    finished = [(rec.get("index", 0), name) for name, rec in manifest.get("items", {}).items()
                if rec.get("status") == "done"]
    items: dict[str, RunItem] = {}
    for _, name in sorted(finished):
        where = path / "items" / name
        record = _read(where / "metrics.json") if (where / "metrics.json").is_file() \
            else manifest["items"][name]
        history = _read(where / "history.json") if (where / "history.json").is_file() else []
        items[name] = RunItem(name, record, history, where)
    return Run(path, config, summary, items)
