"""The parts every model card of the house shares: evaluation loop, schedule, training facts, files.

A model card is ``card.json`` (facts) and ``MODEL_CARD.md`` (the same facts in words) written
next to a checkpoint (``unet/`` + ``scheduler/``). The project's image priors
(:mod:`pnpkit_priors.evaluate`) and pnpkit-audio's multi-source prior (``pnpkit_audio.card``)
each say what their data is and score their denoising their own way (PSNR of patches, SNR of
stems); the rest is here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: The scheduler settings a card records.
SCHEDULE_KEYS = ("_class_name", "num_train_timesteps", "beta_schedule", "beta_start", "beta_end",
                 "prediction_type")


def mean(values: Sequence[float]) -> float | None:
    """The mean rounded to 5 decimals, or ``None`` for no values.

    :param list values: numbers.
    """
    return round(sum(values) / len(values), 5) if values else None


def minutes(seconds: Any) -> str:
    """``"12.3 min"``, or ``"unknown"`` for ``None``.

    :param float seconds: a duration.
    """
    return "unknown" if seconds is None else f"{float(seconds) / 60:.1f} min"


def count_parameters(weights: str | Path) -> int:
    """The number of parameters in a safetensors file, read without loading the tensors.

    :param str weights: the ``.safetensors`` file.
    """
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def noisy_estimates(prior: Any, x: Any, sigmas: Sequence[float], seed: int = 0,
                    batch_size: int | None = None) -> Iterator[tuple[float, int | None, Any, Any]]:
    r"""One-step denoising of clean signals at each noise level, with seeded noise.

    Level ``k`` adds :math:`\sigma_k n` (``n`` from a CPU generator seeded ``seed * 1000 + k``)
    to ``x`` and denoises it with :math:`\mathrm{clip}_{[-1, 1]}(\mathrm{prior.denoise}(y,
    \sigma_k))` (one Tweedie step, for a diffusion prior).

    :param pnpkit.priors.Prior prior: the prior.
    :param torch.Tensor x: clean signals (N, C, *spatial) in [-1, 1].
    :param list sigmas: noise standard deviations (pnpkit's range).
    :param int seed: seed of the noise.
    :param int batch_size: signals per ``denoise`` call (default: all at once).
    :return: for each level, ``(sigma, timestep, y, estimate)``; ``timestep`` is the one of
        matching noise level (``None`` for a prior without ``sigma_to_t``).
    """
    import torch

    from pnpkit.priors import randn_like

    step = batch_size or max(1, x.shape[0])
    for k, sigma in enumerate(sigmas):
        g = torch.Generator().manual_seed(seed * 1000 + k)
        y = x + float(sigma) * randn_like(x, g)
        with torch.no_grad():
            est = torch.cat([prior.denoise(y[i:i + step], float(sigma)).clamp(-1, 1)
                             for i in range(0, x.shape[0], step)])
        t = prior.sigma_to_t(sigma) if hasattr(prior, "sigma_to_t") else None
        yield sigma, t, y, est


def schedule_facts(scheduler_config: dict[str, Any]) -> dict[str, Any]:
    """The card's schedule: :data:`SCHEDULE_KEYS` of a ``scheduler_config.json``.

    :param dict scheduler_config: the scheduler's configuration.
    """
    return {k: scheduler_config.get(k) for k in SCHEDULE_KEYS}


def training_facts(state: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The card's training section from a ``training_state.json``.

    :param dict state: the training state.
    :param list keys: the settings to show between the duration and the losses.
    :return: ``steps``, ``seconds``, the ``keys``, the mean loss of the first and last 100
        steps, the objective and what was saved.
    """
    losses = [float(v) for v in state.get("losses", [])]
    return {"steps": state.get("step"), "seconds": round(float(state.get("seconds", 0.0)), 1),
            **{k: state.get(k) for k in keys},
            "loss_first_100": mean(losses[:100]), "loss_last_100": mean(losses[-100:]),
            # the run's own words (an EDM run records its loss); older runs were all DDPMs
            "objective": state.get("objective",
                                   "MSE between the predicted and the true noise (epsilon prediction)"),
            "precision": precision_text(state.get("precisions"), state.get("step")),
            "weights": "exponential moving average of the trained weights"}


def precision_text(precisions: list[dict[str, Any]] | None, steps: int | None = None) -> str:
    """The precision of a run's steps in words, from the trainer's ``precisions`` record.

    >>> precision_text(None)
    'float32'
    >>> spans = [{"from_step": 0, "precision": "fp32"}, {"from_step": 2877, "precision": "bf16"}]
    >>> precision_text(spans, 8400)
    'float32 for steps 1-2877, bf16 mixed precision (autocast forward passes) for steps 2878-8400'
    """
    names = {"fp32": "float32", "bf16": "bf16 mixed precision (autocast forward passes)"}
    if not precisions:
        return "float32"
    if len(precisions) == 1:
        return names.get(precisions[0]["precision"], precisions[0]["precision"])
    parts = []
    for i, p in enumerate(precisions):
        end = precisions[i + 1]["from_step"] if i + 1 < len(precisions) else steps
        span = f"{p['from_step'] + 1}-{end}" if end is not None else f"{p['from_step'] + 1}-"
        parts.append(f"{names.get(p['precision'], p['precision'])} for steps {span}")
    return ", ".join(parts)


def schedule_line(sched: dict[str, Any]) -> str:
    """The card's Markdown line about the schedule.

    :param dict sched: what :func:`schedule_facts` returns.
    """
    return (f"- `{sched['_class_name']}`: {sched['num_train_timesteps']} steps, "
            f"{sched['beta_schedule']} betas from {sched['beta_start']} to {sched['beta_end']}, "
            f"`{sched['prediction_type']}` prediction")


def objective_lines(train: dict[str, Any]) -> list[str]:
    """The card's Markdown lines about the objective and the loss.

    :param dict train: what :func:`training_facts` returns.
    """
    return [f"- objective: {train['objective']}; saved: {train['weights']}",
            f"- precision: {train.get('precision', 'float32')}",
            f"- loss: {train['loss_first_100']} (mean of the first 100 steps) -> "
            f"{train['loss_last_100']} (mean of the last 100 steps)"]


def write_card(folder: str | Path, card: dict[str, Any], markdown: str) -> dict[str, Any]:
    """Write ``card.json`` and ``MODEL_CARD.md`` into ``folder``.

    :param str folder: the checkpoint folder.
    :param dict card: the facts.
    :param str markdown: the card in words.
    :return: ``card``.
    """
    folder = Path(folder)
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (folder / "MODEL_CARD.md").write_text(markdown)
    return card
