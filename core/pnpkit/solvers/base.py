"""The solver interface: settings in the constructor, a ``solve`` call, a :class:`Result`.

A solver is a keyword-only dataclass whose fields are its settings. ``to_dict`` /
``from_dict`` (and the JSON forms) round-trip them exactly, so every result can be rebuilt
from the configuration saved beside it. Iterative solvers subclass :class:`IterativeSolver`
and implement ``setup`` and ``step``; the loop, the history, NFE counting, timing, the
callback, the progress bar and divergence detection are shared: a ``y`` or ``x_init`` holding
NaN or infinity is refused, and a solve whose iterate becomes non-finite (or leaves any
plausible range, :attr:`IterativeSolver.divergence_bound`) stops at that iteration with the
last finite iterate and says so (:attr:`Result.diverged_at`).

A solver object is its configuration and nothing else: everything one solve needs (schedules,
optimisers, momenta, the constrained measurement) lives in the ``state`` that ``setup``
returns and ``step`` passes on, so one instance can solve several problems at once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .. import operators as ops
from ..operators import Operator
from ..plugins import suggest
from ..priors import Prior

#: ``callback(iteration, x, record)``; returning True stops the solver early.
Callback = Callable[[int, Tensor, dict[str, Any]], "bool | None"]


@dataclass
class Result:
    """What a solver returns.

    :ivar x: the reconstruction, (B, C, *spatial).
    :ivar history: one record per logged stage: ``iteration``, ``stage``, ``objective``
        (1/2 ||A x - y||^2, batch mean), ``residual`` (||A x - y|| / ||y||) and, when a
        reference was given, its quality against it: ``si_snr`` for audio-shaped signals,
        ``psnr`` for every other (see :meth:`SolveContext.log`), plus whatever the solver adds.
    :ivar nfe: network function evaluations of the prior.
    :ivar wall_time: seconds spent in ``solve``.
    :ivar config: the solver's settings (``Solver.from_dict(config)`` rebuilds it).
    :ivar diverged_at: the iteration at which the iterate became non-finite (or left the
        solver's ``divergence_bound``); the solve stopped there, ``x`` is the last finite
        iterate and ``history`` ends with it. None when the solve did not diverge. For a batch,
        the first iteration at which any item diverged (see :attr:`item_diverged_at`).
    :ivar item_diverged_at: one entry per item of the batch: the iteration at which that item
        diverged, or None. In the shared loop (:class:`IterativeSolver`) an item that diverges
        keeps its last finite iterate while the other items go on, so each item of a batch
        ends as it would alone. Empty from a solver that does not fill it: then
        ``diverged_at`` is for the whole batch.
    """

    x: Tensor
    history: list[dict[str, Any]]
    nfe: int
    wall_time: float
    iterations: int
    config: dict[str, Any]
    diverged_at: int | None = None
    item_diverged_at: list[int | None] = dataclasses.field(default_factory=list)

    @property
    def diverged(self) -> bool:
        """Whether the solve stopped on a non-finite iterate (see :attr:`diverged_at`)."""
        return self.diverged_at is not None

    def summary(self) -> dict[str, Any]:
        return {"nfe": self.nfe, "wall_time": self.wall_time, "iterations": self.iterations,
                "solver": self.config, "diverged_at": self.diverged_at}

    def __repr__(self) -> str:
        # One line: the tensor's shape, not its values (a notebook cell stays readable).
        last = self.history[-1] if self.history else {}
        fit = f", residual={last['residual']:.3g}" if "residual" in last else ""
        bad = "" if self.diverged_at is None else f", diverged_at={self.diverged_at}"
        return (f"Result(solver={self.config.get('name', '?')!r}, x={tuple(self.x.shape)} "
                f"{str(self.x.dtype).replace('torch.', '')}, iterations={self.iterations}, "
                f"nfe={self.nfe}, wall_time={self.wall_time:.3g}s{fit}{bad})")


def is_finite(t: Tensor, bound: float = math.inf) -> bool:
    """Whether every value of ``t`` is finite and at most ``bound`` in magnitude.

    >>> is_finite(torch.tensor([0.0, 1.0])), is_finite(torch.tensor([float("nan")]))
    (True, False)
    >>> is_finite(torch.tensor([2e6]), bound=1e6)
    False
    """
    t = t.detach()
    if not bool(torch.isfinite(t).all()):
        return False
    return math.isinf(bound) or t.numel() == 0 or float(t.abs().max()) <= bound


def check_finite(t: Tensor, what: str) -> None:
    """Raise a one-line :class:`ValueError` when ``t`` holds NaN or infinity.

    >>> check_finite(torch.tensor([1.0, float("inf")]), "y")
    Traceback (most recent call last):
    ...
    ValueError: y holds non-finite values (1 NaN or infinity of 2); replace them (e.g. with 0) before solving
    """
    bad = int((~torch.isfinite(t.detach())).sum())
    if bad:
        raise ValueError(f"{what} holds non-finite values ({bad} NaN or infinity of {t.numel()}); "
                         "replace them (e.g. with 0) before solving")


class DoesNotApply(TypeError):
    """The problem is not one this solver handles: raised by ``solve`` (or a step) when the
    operator or prior is of a kind the method cannot take, e.g. DDRM on an operator without an
    SVD (not decomposable), a [0, 1]-range method on a nonlinear operator.

    The message says what the method needs and what it got. It is a :class:`TypeError`, so
    code that catches that sees it too; ``pnpkit bench`` records such a row as
    ``does not apply: <message>``, apart from the rows that failed (status ``error``).
    """


def is_audio_shaped(x: Tensor) -> bool:
    """Whether ``x`` is scored as audio in a solver's history: a real (B, C, T) tensor.

    >>> is_audio_shaped(torch.zeros(1, 4, 800)), is_audio_shaped(torch.zeros(1, 3, 8, 8))
    (True, False)
    """
    return x.dim() == 3 and not x.is_complex()


class SolveContext:
    """The problem being solved and the history being written, as a solver step sees it.

    Against a reference, each history record scores the iterate by the signal's kind, told by
    its shape as pnpkit's data gives signals: a real 3-D tensor (B, C, T) is audio (channels
    or separated stems over time) and gets ``si_snr``, the scale-invariant SNR in dB over
    time averaged over channels and items (:func:`pnpkit.metrics.si_snr`); anything else
    (images (B, C, H, W), complex signals) gets ``psnr`` in dB (:func:`pnpkit.metrics.psnr`).
    A (B, C, N) vector, the toy problems' included, counts as audio.
    """

    def __init__(self, y: Tensor, operator: Operator, prior: Prior,
                 generator: torch.Generator | None, reference: Tensor | None) -> None:
        self.y = y
        self.operator = operator
        self.prior = prior
        self.generator = generator
        self.reference = reference
        self.history: list[dict[str, Any]] = []

    def log(self, iteration: int, x: Tensor, stage: str = "iterate", **extra: Any) -> dict[str, Any]:
        """Append a history record for iterate ``x``: the data fit and, against the reference,
        ``si_snr`` for an audio-shaped (B, C, T) signal or ``psnr`` for any other."""
        with torch.no_grad():
            # one operator call for both: objective 1/2 ||A x - y||^2, residual ||A x - y|| / ||y||
            r = (self.operator.A(x) - self.y).flatten(1)
            sq = (r.abs() if r.is_complex() else r).pow(2).sum(1)
            rec: dict[str, Any] = {
                "iteration": iteration, "stage": stage,
                "objective": float(0.5 * sq.mean()),
                "residual": float((sq.sqrt() / self.y.flatten(1).norm(dim=1).clamp_min(1e-12)).mean()),
            }
            if self.reference is not None:
                from .. import metrics

                if is_audio_shaped(x):
                    rec["si_snr"] = float(metrics.si_snr(x, self.reference).mean())
                else:
                    rec["psnr"] = float(metrics.psnr(x, self.reference).mean())
        rec.update({k: (float(v) if isinstance(v, (Tensor, float)) else v) for k, v in extra.items()})
        self.history.append(rec)
        return rec

    def randn_like(self, x: Tensor) -> Tensor:
        from ..priors import randn_like

        return randn_like(x, self.generator)


@dataclass(kw_only=True)
class Solver:
    """Base class of every solver. Subclasses are ``@dataclass(kw_only=True)``."""

    name: ClassVar[str] = ""

    # -- configuration ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every setting, plus ``name``: ``type(self).from_dict(d)`` rebuilds this solver."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> Solver:
        """Build from a settings dict; unknown keys and wrong types are clear errors."""
        config = dict(config)
        name = config.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"config is for solver {name!r}, not {cls.name!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for key, value in list(config.items()):
            if key not in fields:
                raise TypeError(f"unknown setting {key!r} for solver {cls.name!r}."
                                f"{suggest(key, fields)} Valid settings: {', '.join(fields)}.")
            config[key] = _coerce(value, hints.get(key), f"{cls.name}.{key}")
        return cls(**config)

    def apply_preset(self) -> None:
        """Fill the settings left at None from ``PRESETS[self.preset]`` layered over ``BASE``.

        For solvers with the papers' per-task settings: declare ``preset: str | None``, the
        preset-controlled fields with default None, the class dicts ``PRESETS`` and ``BASE``,
        and call this first in ``__post_init__``. A preset overrides ``BASE`` key by key (it
        names only what differs), explicit settings win over both; the resolved values are
        what ``to_dict`` saves, so a saved config rebuilds the same solver.
        """
        presets: dict[str, dict[str, Any]] = getattr(self, "PRESETS", {})
        preset = getattr(self, "preset", None)
        if preset is not None:
            check_choice(self.name, "preset", preset, sorted(presets))
        values = {**getattr(self, "BASE", {}), **(presets[preset] if preset else {})}
        for key, value in values.items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Solver:
        return cls.from_dict(json.loads(text))

    # -- solving ---------------------------------------------------------------------------
    def solve(self, y: Tensor, operator: Operator, prior: Prior, *, x_init: Tensor | None = None,
              generator: torch.Generator | None = None, callback: Callback | None = None,
              reference: Tensor | None = None, progress: bool = False) -> Result:
        raise NotImplementedError


def check_choice(solver: str, key: str, value: Any, choices: Iterable[str]) -> None:
    """Raise a one-line :class:`ValueError` unless ``value`` is one of ``choices``.

    :param str solver: the solver's name, which starts the message.
    :param str key: the setting checked.
    :param value: its value.
    :param choices: the allowed values, in the order the message lists them.

    >>> check_choice("dcdp", "optimizer", "adma", ("sgd", "adam"))
    Traceback (most recent call last):
    ...
    ValueError: dcdp: optimizer must be one of sgd, adam, got 'adma'. Did you mean 'adam'?
    """
    choices = list(choices)
    if value not in choices:
        hint = suggest(value, choices) if isinstance(value, str) else ""
        raise ValueError(f"{solver}: {key} must be one of {', '.join(choices)}, "
                         f"got {value!r}.{hint}")


def check_positive(solver: str, key: str, value: float | None, meaning: str) -> None:
    """Raise a one-line :class:`ValueError` unless ``value`` is None or a number > 0.

    :param str solver: the solver's name, which starts the message.
    :param str key: the setting checked.
    :param value: its value (None passes: an unset optional setting).
    :param str meaning: what the setting is, with a working example, for the message.

    >>> check_positive("hqs", "sigma", -0.1, "the denoiser's noise level, e.g. sigma = 0.1")
    Traceback (most recent call last):
    ...
    ValueError: hqs: sigma must be > 0 (the denoiser's noise level, e.g. sigma = 0.1), got -0.1
    """
    if value is not None and not value > 0:  # NaN fails too
        raise ValueError(f"{solver}: {key} must be > 0 ({meaning}), got {value!r}")


def check_splitting(solver: Any) -> None:
    """The checks shared by the splitting solvers' ``stepsize``, ``sigma`` and ``sigma_end``."""
    check_positive(solver.name, "stepsize", solver.stepsize,
                   "the data step's weight gamma, e.g. stepsize = 1.0")
    for key in ("sigma", "sigma_end"):
        check_positive(solver.name, key, getattr(solver, key),
                       f"the denoiser's noise level in the signal range [-1, 1], e.g. {key} = 0.05")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a config value against a field's type hint (ints are accepted as floats)."""
    if hint is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    options = typing.get_args(hint) if origin in (typing.Union, getattr(__import__("types"),
                                                                         "UnionType", None)) else (hint,)
    for opt in options:
        if opt is type(None) and value is None:
            return value
        if opt is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if opt is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if opt in (str, bool) and isinstance(value, opt):
            return value
        base = typing.get_origin(opt) or opt
        if base in (list, tuple) and isinstance(value, (list, tuple)):
            return type(value)(value) if base is list else tuple(value)
        if base is dict and isinstance(value, dict):
            return value
    raise TypeError(f"{where} must be {hint}, got {value!r} ({type(value).__name__})")


@dataclass(kw_only=True)
class IterativeSolver(Solver):
    """A solver that runs ``iterations`` steps of ``step`` from the state ``setup`` builds.

    :param int iterations: number of outer iterations.
    :param str init: starting point when no ``x_init`` is given: ``"pinv"`` (A^+ y),
        ``"adjoint"`` (A^T y) or ``"zeros"``.
    :param float tol: stop when ||x_k - x_{k-1}|| / ||x_{k-1}|| falls below it (0: never).

    Divergence: after every step the iterate ``state["x"]`` is checked; one holding NaN or
    infinity, or a value beyond :attr:`divergence_bound` in magnitude, stops the solve at that
    iteration. The :class:`Result` then holds the last finite iterate (its history ends with
    that iterate's record) and ``diverged_at`` the iteration that diverged.
    """

    #: An iterate with a value beyond this magnitude has diverged (signals live in [-1, 1]);
    #: a solver whose ``state["x"]`` lives in another range overrides it (``math.inf``: only
    #: NaN and infinity count).
    divergence_bound: ClassVar[float] = 1e6

    iterations: int = 30
    init: str = "pinv"
    tol: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"{self.name}: iterations must be >= 1 (a whole number), got "
                             f"{self.iterations!r}")
        check_choice(self.name, "init", self.init, ("pinv", "adjoint", "zeros"))
        if not self.tol >= 0:
            raise ValueError(f"{self.name}: tol must be >= 0 (0: run every iteration), got {self.tol!r}")

    def initial_point(self, ctx: SolveContext) -> Tensor:
        y, op = ctx.y, ctx.operator
        with torch.no_grad():
            if self.init == "adjoint" and ops.is_linear(op):
                return op.A_adjoint(y)
            x = ops.pseudo_inverse(op, y)
            return torch.zeros_like(x) if self.init == "zeros" else x

    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        """The solver's state at iteration 0; ``state["x"]`` is the current estimate.

        Everything the loop needs beyond the settings (schedules, optimisers, auxiliary
        variables) goes in the state, never on ``self``: one solver can then run several
        solves at once.
        """
        return {"x": x}

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        """One iteration: the new state, with ``state["x"]`` the estimate. An optional
        ``state["log"]`` dict is added to this iteration's history record. It reads the
        settings and ``state`` only (return ``{**state, ...}`` to carry constants on)."""
        raise NotImplementedError

    def finish(self, ctx: SolveContext, state: dict[str, Any]) -> Tensor:
        return state["x"]

    def solve(self, y: Tensor, operator: Operator, prior: Prior, *, x_init: Tensor | None = None,
              generator: torch.Generator | None = None, callback: Callback | None = None,
              reference: Tensor | None = None, progress: bool = False) -> Result:
        """Reconstruct ``x`` from ``y = A(x) + n``; see :class:`Result`."""
        from tqdm.auto import tqdm

        check_finite(y, f"{self.name}: the measurement y")
        if x_init is not None:
            check_finite(x_init, f"{self.name}: x_init")
        ctx = SolveContext(y, operator, prior, generator, reference)
        nfe0 = getattr(prior, "nfe", 0)
        start = time.perf_counter()
        x0 = self.initial_point(ctx) if x_init is None else x_init.clone()
        if not is_finite(x0):
            raise ValueError(f"{self.name}: the initial point (init = {self.init!r}) holds non-finite "
                             "values; set init = \"zeros\" or pass a finite x_init")
        state = self.setup(ctx, x0)
        # Per item: the iteration it diverged at (None: not) and whether it stopped (diverged,
        # or converged under tol); a stopped item keeps ``final[i]`` while the others go on,
        # so every item of a batch ends as it would alone. A single item stops the loop.
        n = x0.shape[0] if x0.dim() > 0 else 1
        item_diverged: list[int | None] = [None] * n
        stopped = torch.zeros(n, dtype=torch.bool, device=x0.device)
        final = x0.detach().clone()
        k, last, logged = 0, x0, 0
        for k in tqdm(range(self.iterations), desc=self.name, disable=not progress, leave=False):
            prev = state["x"]
            # A copy: a step may update its iterate in place (an optimiser's parameter).
            last, logged = prev.detach().clone(), len(ctx.history)
            state = self.step(ctx, state, k)
            bad = ~_finite_items(state["x"], self.divergence_bound) & ~stopped
            if bool(bad.any()):
                for i in bad.nonzero().flatten().tolist():
                    item_diverged[i] = k
                final[bad] = last[bad]
                stopped |= bad
                if bool(stopped.all()):
                    # Stop here: the history keeps the last finite state, not this step's records.
                    del ctx.history[logged:]
                    break
            # A step may hand extra per-iteration figures (loss terms, timestep) to the record;
            # the record scores each stopped item by the iterate it keeps.
            now = state["x"] if not bool(stopped.any()) else _keep(stopped, final, state["x"])
            rec = ctx.log(k, now, **state.pop("log", {}))
            if callback is not None and callback(k, now, rec) is True:
                break
            if self.tol > 0:
                change = ((state["x"] - prev).flatten(1).norm(dim=1)
                          / prev.flatten(1).norm(dim=1).clamp_min(1e-12))
                done_now = (change < self.tol) & ~stopped
                if bool(done_now.any()):
                    final[done_now] = self.finish(ctx, state).detach()[done_now]
                    stopped |= done_now
                if bool(stopped.all()):
                    break
        diverged_now = [d for d in item_diverged if d is not None]
        if diverged_now and bool(stopped.all()) and max(diverged_now) == k:
            x = final
        else:
            x = self.finish(ctx, state)
            if bool(stopped.any()):
                x = _keep(stopped, final, x)
            late = ~_finite_items(x) & ~stopped
            for i in late.nonzero().flatten().tolist():
                item_diverged[i] = k + 1
            if bool(late.any()):
                x = _keep(late, state["x"], x)
        diverged_now = [d for d in item_diverged if d is not None]
        diverged_at = min(diverged_now) if diverged_now else None
        # A diverged solve keeps k iterations: the ones before the iterate went non-finite.
        done = k if diverged_now and bool(stopped.all()) and max(diverged_now) == k else k + 1
        return Result(x=x.detach(), history=ctx.history, nfe=getattr(prior, "nfe", 0) - nfe0,
                      wall_time=time.perf_counter() - start, iterations=done,
                      config=self.to_dict(), diverged_at=diverged_at,
                      item_diverged_at=item_diverged)


def _finite_items(t: Tensor, bound: float = math.inf) -> Tensor:
    """Per item (first dimension): whether all its values are finite and at most ``bound``."""
    t = t.detach()
    flat = t.reshape(t.shape[0], -1) if t.dim() > 0 else t.reshape(1, 1)
    ok = torch.isfinite(flat).all(dim=1)
    if not math.isinf(bound) and flat.shape[1] > 0:
        ok &= flat.abs().amax(dim=1).nan_to_num(math.inf) <= bound
    return ok


def _keep(mask: Tensor, kept: Tensor, x: Tensor) -> Tensor:
    """``x`` with the items where ``mask`` holds taken from ``kept``."""
    return torch.where(mask.view(-1, *([1] * (x.dim() - 1))), kept.to(x.dtype), x)


def geometric(start: float, end: float | None, k: int, n: int) -> float:
    """The k-th of ``n`` values decaying geometrically from ``start`` to ``end`` (constant if None)."""
    if end is None or n <= 1:
        return start
    return start * (end / start) ** (k / (n - 1))
