"""Restoring the user's own measurements: shapes, windows and the metrics that need no reference.

``[data] measurement = "y.png"`` hands :mod:`pnpkit.pipeline` the measured ``y`` itself. For
each item, :func:`plan` infers the signal shape from the operator
(:func:`pnpkit.operators.infer_signal_shape`), builds the operator for it and checks that it
gives that measurement (:func:`pnpkit.operators.check_measurement`), checks the reference's
shape, and, for audio longer than the prior's window (``prior.fixed_shape``), lays out the
overlapping windows (:func:`pnpkit.tiling.window_starts`): everything that can be wrong with
an input is found before the output folder is created. :func:`solve` then solves the item
(window by window, cross-faded with :func:`pnpkit.tiling.crossfade`, each window with its own
seeded generator) and :func:`self_metrics` scores it without a reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import operators as ops
from .data import Measured, resample

if TYPE_CHECKING:
    from .solvers import Result, Solver

__all__ = ["Plan", "plan", "self_metrics", "solve", "stem_names", "to_rate"]


@dataclass
class Plan:
    """How one measured item is solved.

    :param tuple signal_shape: the signal (C, *spatial) at the solve rate.
    :param op: the operator for the whole signal (the data residual is measured with it).
    :param window_op: the operator for one window, or None (solved whole).
    :param list starts: the windows' first samples (empty: solved whole).
    :param int window: the window length in samples (0: solved whole).
    :param int overlap: the cross-fade between windows, in samples.
    """

    signal_shape: tuple[int, ...]
    op: Any
    window_op: Any = None
    starts: list[int] = field(default_factory=list)
    window: int = 0
    overlap: int = 0


def prior_channels(prior: Any) -> int | None:
    """The channel count a prior declares (its ``shape[0]``), or None."""
    shape = getattr(prior, "shape", None)
    if isinstance(shape, (tuple, list)) and shape and isinstance(shape[0], int):
        return int(shape[0])
    return None


def stem_names(prior: Any, channels: int) -> list[str]:
    """The prior's ``stems`` / ``channel_names`` when it has one per channel, else the indices."""
    for attr in ("stems", "channel_names"):
        names = getattr(prior, attr, None)
        if names is not None and len(names) == channels:
            return [str(n) for n in names]
    return [str(c) for c in range(channels)]


def plan(item: Measured, component: Any, settings: dict[str, Any], prior: Any,
         operator_for: Any, overlap_seconds: float = 1.0) -> Plan:
    """Check one measured item and decide how it is solved (see the module's docstring).

    :param component: the registered operator (:class:`pnpkit.plugins.Component`).
    :param dict settings: the operator's settings.
    :param prior: the built prior (its ``shape`` hints the channel count, its ``fixed_shape``
        the audio window).
    :param operator_for: ``shape -> operator`` (the pipeline's, built once per shape).
    :raises ValueError: one line naming the file and the fix.
    """
    shape = tuple(int(s) for s in item.measurement.shape)
    # The prior's channel count tells a mixture how many sources it sums (the user's
    # `sources` wins); rules that do not name `sources` never see it (pnpkit.plugins.accepted).
    hints: dict[str, Any] = {}
    if (c := prior_channels(prior)) is not None:
        hints["sources"] = c
    signal = _infer(item, component, shape, {**hints, **settings})
    if item.kind == "audio" and item.solve_rate and item.sample_rate:
        mrate = ops.measurement_rate(operator_for(signal), item.solve_rate)
        if mrate is not None and mrate != item.solve_rate:
            shape, signal = _rerate(item, int(mrate), component, {**hints, **settings})
    if item.reference is not None:
        expected = signal
        if item.kind == "audio" and item.output_rate and item.reference_rate:
            # The reference is scored against the result as written: at the output rate.
            item.reference = resample(item.reference, item.reference_rate, item.output_rate)
            expected = (signal[0], item.output_length)
        got = tuple(int(s) for s in item.reference.shape)
        if got != expected:
            raise ValueError(f"{item.reference_path}: the reference has shape {got}, but the "
                             f"measurement {item.path.name} {shape} gives signals of shape "
                             f"{expected}; give the reference of that shape, or drop reference")
    out = Plan(signal, None)
    fixed = getattr(prior, "fixed_shape", None)
    if item.kind == "audio" and fixed is not None and len(fixed) == 1:
        window, length = int(fixed[0]), signal[-1]
        rate = item.solve_rate or 1
        if length < window:
            raise ValueError(
                f"{item.path}: {length} samples ({length / rate:.3f} s at {rate} Hz) is shorter "
                f"than the prior's window of {window} samples ({window / rate:.3f} s); pad the "
                f"file to at least {window / rate:.3f} s or use a prior with a shorter window")
        if length > window:
            if shape[-1] != length:
                raise ValueError(f"{item.path}: a song longer than the prior's window is solved "
                                 f"window by window, which needs a measurement as long as the "
                                 f"signal ({shape[-1]} against {length} samples)")
            from .tiling import window_starts

            out.overlap = min(int(round(overlap_seconds * rate)), window - 1)
            out.window, out.starts = window, window_starts(length, window, out.overlap)
            out.window_op = operator_for((*signal[:-1], window))
            _check(item, out.window_op, (*signal[:-1], window), (*shape[:-1], window))
    out.op = operator_for(signal)
    _check(item, out.op, signal, shape)
    return out


def _infer(item: Measured, component: Any, shape: tuple[int, ...],
           settings: dict[str, Any]) -> tuple[int, ...]:
    try:
        return ops.infer_signal_shape(component, shape, settings)
    except ValueError as exc:
        raise ValueError(f"{item.path}: {exc}") from None


def _rerate(item: Measured, mrate: int, component: Any, settings: dict[str, Any]
            ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """An operator that measures at ``mrate`` for the signal's rate: the file goes to ``mrate``
    and the result is written at the signal's rate (resampling it to the file's would undo the
    restoration)."""
    assert item.original is not None and item.sample_rate and item.solve_rate
    name, rate = item.path.name, item.sample_rate
    item.notes = [n for n in item.notes if "resampled" not in n]
    if mrate != rate:
        item.notes.append(f"{name}: {rate} Hz resampled to {mrate} Hz, the operator's measurement "
                          f"rate for the prior's {item.solve_rate} Hz")
    item.measurement = resample(item.original, rate, mrate)
    item.output_rate = item.solve_rate
    shape = tuple(int(s) for s in item.measurement.shape)
    return shape, _infer(item, component, shape, settings)


def _check(item: Measured, op: Any, signal: tuple[int, ...], shape: tuple[int, ...]) -> None:
    try:
        ops.check_measurement(op, signal, shape)
    except ValueError as exc:
        raise ValueError(f"{item.path}: {exc}") from None


def window_seed(seed: int, window: int) -> int:
    """The seed of window ``window`` of an item seeded ``seed``: ``seed`` itself for the first
    window, a hash of both for the others (``seed + window`` would repeat the next item's).

    >>> window_seed(5, 0), window_seed(5, 1) == window_seed(6, 0), window_seed(5, 1) == window_seed(6, 1)
    (5, False, False)
    """
    if window == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, window]).generate_state(1, np.uint64)[0] >> 1)


def solve(solver: Solver, prior: Any, y: Tensor, how: Plan, seed: int, *,
          reference: Tensor | None = None, progress: bool = False) -> tuple[Tensor, dict[str, Any]]:
    """Solve one measured item, whole or window by window; return ``x`` and what to record.

    Window ``w`` is solved with a generator of its own, seeded by :func:`window_seed` from
    ``seed`` (the run's seed plus the item's index) and ``w``, so any window can be reproduced
    alone and no two windows of a run share a noise stream.

    A solve that diverges (:attr:`pnpkit.solvers.Result.diverged_at`) is recorded as
    ``diverged_at`` (and, window by window, ``diverged_window``, the first window that did);
    the other windows are still solved, so the song keeps its length.
    """
    if not how.starts:
        g = torch.Generator(device=y.device).manual_seed(seed)
        result: Result = solver.solve(y, how.op, prior, generator=g, reference=reference,
                                      progress=progress)
        return result.x, {"nfe": result.nfe, "wall_time": result.wall_time,
                          "iterations": result.iterations, "history": result.history,
                          "diverged_at": getattr(result, "diverged_at", None)}
    from .tiling import crossfade

    chunks, history, nfe, wall, iterations = [], [], 0, 0.0, 0
    diverged: dict[str, int] = {}
    for w, start in enumerate(how.starts):
        g = torch.Generator(device=y.device).manual_seed(window_seed(seed, w))
        r = solver.solve(y[..., start:start + how.window], how.window_op, prior, generator=g)
        chunks.append(r.x.detach())
        history += [{**h, "window": w} for h in r.history]
        nfe, wall, iterations = nfe + r.nfe, wall + r.wall_time, r.iterations
        at = getattr(r, "diverged_at", None)
        if at is not None and not diverged:
            diverged = {"diverged_at": int(at), "diverged_window": w}
    x = crossfade(chunks, how.starts, how.signal_shape[-1], how.overlap)
    return x, {"nfe": nfe, "wall_time": wall, "iterations": iterations, "history": history,
               "windows": len(how.starts), "window": how.window, "overlap": how.overlap,
               "diverged_at": None, **diverged}


def self_metrics(op: Any, x: Tensor, y: Tensor) -> dict[str, float]:
    r"""What needs no reference: the data residual and the discrepancy against ``sigma_y``.

    ``residual`` :math:`= \|A x - y\| / \|y\|`; ``discrepancy`` :math:`= \|A x - y\| /
    \sqrt{m}` (``m`` the measurement's size), which a solution consistent with noise of
    level :math:`\sigma_y` brings near :math:`\sigma_y`; ``discrepancy_ratio`` is their ratio
    (only when ``sigma_y > 0``).

    >>> from pnpkit.operators import MatrixOperator
    >>> op = MatrixOperator(torch.eye(4), shape=(1, 4), sigma=0.5)
    >>> self_metrics(op, torch.zeros(1, 1, 4), torch.ones(1, 4))
    {'residual': 1.0, 'discrepancy': 1.0, 'discrepancy_ratio': 2.0}
    """
    with torch.no_grad():
        r = (op.A(x) - y).detach()
    norm = float(r.abs().pow(2).sum().sqrt())
    out = {"residual": norm / max(float(y.abs().pow(2).sum().sqrt()), 1e-20),
           "discrepancy": norm / math.sqrt(max(y[0].numel(), 1))}
    sigma = ops.noise_sigma(op)
    if sigma > 0:
        out["discrepancy_ratio"] = out["discrepancy"] / sigma
    return out


def to_rate(x: Tensor, rate: int | None, target: int | None, length: int) -> Tensor:
    """``x`` (B, C, L) resampled from ``rate`` to ``target`` and cut or zero-padded to ``length``."""
    if rate is None or target is None or rate == target:
        return x
    import torchaudio.functional as AF

    out = AF.resample(x, rate, target)
    if out.shape[-1] < length:
        out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
    return out[..., :length]
