"""The one diffusion trainer of the house: DDPM epsilon prediction or EDM denoising, AdamW,
warm-up + cosine, EMA, exact resume, validation denoising gain.

:func:`train_ddpm` trains any diffusers ``ModelMixin`` that predicts the noise of
(B, C, *spatial) signals in [-1, 1] from ``model(x_t, t).sample``: the project's image DDPMs
(:mod:`pnpkit_priors.train`, a ``UNet2DModel`` on (B, C, H, W) patches) and pnpkit-audio's
multi-source prior (a 1-D network on (B, 4, L) stems) alike. The objective is the DDPM one,

.. math:: \\mathcal L = \\mathbb E_{x_0, t, \\epsilon}\\,
          \\big\\|\\epsilon_\\theta(\\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon,
          \\; t) - \\epsilon\\big\\|^2,

on the papers' 1000-step linear schedule (:func:`ddpm_scheduler`), with AdamW, a linear
warm-up then a cosine decay of the learning rate (:func:`learning_rate`) and gradient
clipping at norm 1. The exponential moving average of the weights (:data:`EMA`) is what is
saved, with ``save_pretrained`` (safetensors), into ``OUT/unet`` and ``OUT/scheduler`` every
``save_every`` steps and at the end, so a stopped run still leaves a usable checkpoint.

With ``parametrisation = "edm"`` the model is a backbone ``F(x, c_noise)`` wrapped in
EDM's preconditioning (:class:`pnpkit_priors.edm.EDMPrecond`, Karras et al. 2022) and the
objective is EDM's,

.. math:: \\mathcal L = \\mathbb E_{x_0, \\sigma, n}\\, \\lambda(\\sigma)\\,
          \\|D_\\theta(x_0 + \\sigma n, \\sigma) - x_0\\|^2, \\quad
          \\ln\\sigma \\sim \\mathcal N(P_\\text{mean}, P_\\text{std}^2), \\quad
          \\lambda(\\sigma) = \\frac{\\sigma^2 + \\sigma_d^2}{(\\sigma\\,\\sigma_d)^2}

(:data:`EDM_DEFAULTS`: ``P_mean = -1.2``, ``P_std = 1.2``); the EMA weights are saved with
:func:`pnpkit_priors.edm.save_edm` into ``OUT/config.json`` and ``OUT/model.safetensors``,
the folder ``[prior] name = "edm"`` loads. ``"ddpm"`` (the default) is the DDPM objective
above, unchanged.

Given a fixed ``validation`` batch, the EMA weights are evaluated every ``validate_every``
steps as a prior (:class:`~pnpkit_priors.diffusion.DiffusersPrior` or
:class:`~pnpkit_priors.edm.EDMPrior`): the one-step denoising gain
``10 log10(||y - x0||^2 / ||denoise(y, sigma) - x0||^2)`` in dB at each of
``validation_sigmas`` (0.05, 0.1, 0.2, 0.4), shown on the progress bar and recorded in
``training_state.json`` (``validation``: one entry per evaluation, with the step and the
run's ``seconds`` of training when it was made).

Everything random in a step is a pure function of ``(seed, step)``: the batch is
``sampler.sample(batch_size, numpy.random.default_rng([seed, step]))`` and the timesteps and
noise come from a ``torch.Generator`` seeded by :func:`stream_seed`. With the optimiser, the
EMA and the learning-rate schedule restored from ``OUT/training_state.pt``, ``resume``
continues a run exactly: on the same machine and thread count, a run stopped and resumed ends
with the same weights, bit for bit, as one that was never stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The EMA of the weights (what is saved): diffusers' ``EMAModel`` with warm-up.
EMA = dict(decay=0.999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
#: How the data stream is drawn, as recorded in ``training_state.json``.
DATA_STREAM = ("batch: sampler.sample(batch_size, numpy.random.default_rng([seed, step])); "
               "timesteps and noise: torch.Generator seeded by "
               "numpy.random.SeedSequence([seed, step, 1])")
#: The parametrisations :func:`train_ddpm` trains.
PARAMETRISATIONS = ("ddpm", "edm")
#: EDM's settings (Karras et al. 2022): the log-normal of the training levels, the data's
#: standard deviation, and the range the saved denoiser is declared valid on.
EDM_DEFAULTS: dict[str, float] = dict(p_mean=-1.2, p_std=1.2, sigma_data=0.5, sigma_min=1e-4,
                                      sigma_max=80.0)
#: The noise levels of the validation denoising gain.
VALIDATION_SIGMAS = (0.05, 0.1, 0.2, 0.4)
#: The precisions a training step runs in: ``"fp32"``, or ``"bf16"``: the forward pass under
#: ``torch.autocast`` in bfloat16 (mixed precision: weights, optimiser, EMA and loss stay
#: float32). On this project's CPU (AVX-512 BF16) a step of the grey64 preset takes 0.57x the
#: float32 time; on a CPU without bfloat16 instructions it is slower, so float32 is the default.
PRECISIONS = ("fp32", "bf16")


def ddpm_scheduler() -> Any:
    """The papers' schedule: a ``DDPMScheduler`` with 1000 linear betas from 1e-4 to 0.02 and
    epsilon prediction.

    :return: a ``diffusers.DDPMScheduler``.
    """
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                         beta_end=0.02, prediction_type="epsilon", clip_sample=True)


def stream_seed(seed: int, step: int) -> int:
    """The seed of the torch generator of step ``step`` (timesteps and noise).

    :param int seed: the run's seed.
    :param int step: the optimiser step (from 0).
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, step, 1]).generate_state(1, np.uint64)[0])


def learning_rate(step: int, lr: float, warmup_steps: int, schedule_steps: int) -> float:
    r"""The learning rate of optimiser step ``step`` (counted from 0).

    .. math:: \eta_s = \eta \, \min\!\Big(1, \frac{s + 1}{W}\Big) \,
              \frac{1 + \cos(\pi \min(s / S, 1))}{2}

    with :math:`W` the warm-up steps and :math:`S` the length of the cosine decay.

    :param int step: the step.
    :param float lr: the peak learning rate :math:`\eta`.
    :param int warmup_steps: :math:`W`.
    :param int schedule_steps: :math:`S`.
    """
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    progress = min(1.0, step / max(1, schedule_steps))
    return lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def normalise(config: dict[str, Any]) -> dict[str, Any]:
    """A model configuration as JSON stores it (tuples become lists).

    :param dict config: the configuration.
    """
    return json.loads(json.dumps(config))


def estimate_sigma_data(sampler: Any, seed: int = 0, batches: int = 8,
                        batch_size: int = 16) -> float:
    """The standard deviation of the data ``sampler`` draws (EDM's ``sigma_data``).

    Over ``batches`` batches drawn with ``numpy.random.default_rng([seed, 2**32 - 1, i])``
    (not the training stream's generators), all values pooled.

    :param sampler: an object with ``sample(batch_size, rng) -> array``.
    :param int seed: the seed of the draws.
    :param int batches: how many batches.
    :param int batch_size: signals per batch.
    """
    import numpy as np

    values = [np.asarray(sampler.sample(batch_size, np.random.default_rng([seed, 2**32 - 1, i])),
                         dtype=np.float64).ravel() for i in range(batches)]
    return float(np.concatenate(values).std())


def denoising_gain(prior: Any, clean: Any, sigmas: tuple[float, ...] = VALIDATION_SIGMAS,
                   seed: int = 0) -> dict[str, float]:
    """One-step denoising gain of ``prior`` in dB at each level: ``10 log10(||y - x0||^2 /
    ||prior.denoise(y, sigma) - x0||^2)`` with ``y = x0 + sigma n``, pooled over the batch.

    The noise ``n`` is drawn once, from a ``torch.Generator`` seeded by ``seed``, and scaled
    to each level.

    :param prior: a pnpkit prior.
    :param clean: the signals ``x0``, (B, C, *spatial), a tensor or array.
    :param tuple sigmas: the levels.
    :param int seed: the noise's seed.
    :return: ``{"0.05": dB, ...}`` (levels as ``str(float)``).
    """
    import numpy as np
    import torch

    from pnpkit.priors import randn_like

    x0 = torch.as_tensor(np.asarray(clean, dtype=np.float32) if not isinstance(clean, torch.Tensor)
                         else clean).float()
    n = randn_like(x0, torch.Generator().manual_seed(int(seed)))
    out: dict[str, float] = {}
    with torch.no_grad():
        for s in sigmas:
            y = x0 + float(s) * n
            err = float(((prior.denoise(y, float(s)) - x0) ** 2).sum())
            out[str(float(s))] = round(10 * math.log10(float(((y - x0) ** 2).sum()) / max(err, 1e-30)), 4)
    return out


def _write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def train_ddpm(model_cls: type, model_config: dict[str, Any] | None, sampler: Any,
               out: str | Path, steps: int, spatial: tuple[int, ...], *,
               defaults: dict[str, Any] | None = None, batch_size: int, lr: float,
               seed: int = 0, save_every: int = 250,
               max_minutes: float | None = None, resume: bool = False,
               threads: int | None = None, schedule_steps: int | None = None,
               warmup_steps: int = 200, settings: dict[str, Any] | None = None,
               info: dict[str, Any] | None = None, overwrite: bool = False,
               check_model: Callable[[Any], None] | None = None, desc: str = "train",
               progress: bool = True, parametrisation: str = "ddpm",
               edm: dict[str, float] | None = None, validation: Any = None,
               validate_every: int | None = None,
               validation_sigmas: tuple[float, ...] = VALIDATION_SIGMAS,
               precision: str = "fp32") -> dict[str, Any]:
    """Train ``model_cls(**model_config)`` for ``steps`` optimiser steps and save it under ``out``.

    ``out`` receives ``unet/`` (the EMA weights, ``save_pretrained``), ``scheduler/`` (with
    ``parametrisation = "edm"``: ``config.json`` and ``model.safetensors``, see
    :func:`pnpkit_priors.edm.save_edm`), ``training_state.pt`` (model, optimiser, EMA and RNG
    states and the training state, for ``resume``) and ``training_state.json`` (settings,
    ``step``, ``seconds``, per-step ``losses``, ``stopped_by``, ``validation``).

    :param type model_cls: a diffusers ``ModelMixin`` called as ``model(x_t, t).sample``, with
        ``in_channels`` in its configuration.
    :param dict model_config: its settings, over ``defaults``; ``None``: the resumed run's own
        (``defaults`` for a new run). A resumed run must keep them.
    :param sampler: an object with ``sample(batch_size, rng) -> (B, C, *spatial)`` float32
        arrays in [-1, 1], a pure function of the numpy generator ``rng``.
    :param str out: the output folder.
    :param int steps: train until this many optimiser steps are done in total.
    :param tuple spatial: the spatial shape of one training signal (``(L,)``, ``(H, W)``).
    :param dict defaults: the model settings ``model_config`` is laid over.
    :param int batch_size: signals per step.
    :param float lr: the peak learning rate (AdamW, no weight decay).
    :param int seed: seed of the initial weights and of the data stream.
    :param int save_every: save the checkpoint every this many steps.
    :param float max_minutes: stop (and save) once this invocation has trained this long.
    :param bool resume: continue the run in ``out`` (a fresh start when there is none).
    :param int threads: torch's CPU threads during training (restored afterwards).
    :param int schedule_steps: length of the cosine decay (default: ``steps``, or the resumed
        run's when longer).
    :param int warmup_steps: steps of linear learning-rate warm-up.
    :param dict settings: more settings that fix the run (``length``, ``preset``, ...): recorded,
        and a resumed run must keep them, like ``seed``, ``batch_size``, ``lr`` and
        ``warmup_steps``.
    :param dict info: facts recorded in the state of a new run (``data_root``, ...).
    :param bool overwrite: start afresh over a run in ``out`` when not resuming (default: refuse).
    :param callable check_model: called with the new model; raises ``ValueError`` when the
        settings do not fit it.
    :param str desc: the progress bar's label.
    :param bool progress: show a tqdm progress bar.
    :param str parametrisation: ``"ddpm"`` (epsilon prediction on the linear schedule, the
        default, unchanged) or ``"edm"`` (``model_cls`` is the backbone ``F(x, c_noise)``,
        trained inside :class:`~pnpkit_priors.edm.EDMPrecond` with EDM's loss).
    :param dict edm: EDM's settings over :data:`EDM_DEFAULTS` (``p_mean``, ``p_std``,
        ``sigma_data``, ``sigma_min``, ``sigma_max``); recorded, and a resumed run must keep them.
    :param validation: a fixed batch of clean signals (B, C, *spatial) in [-1, 1] (a tensor or
        array; any spatial size the network runs at): its denoising gain (:func:`denoising_gain`,
        noise seeded by ``seed``) is evaluated on the EMA weights every ``validate_every``
        steps and at the end, shown on the progress bar and recorded (``validation``).
        ``None``: no validation.
    :param int validate_every: steps between validations (default ``save_every``).
    :param tuple validation_sigmas: the levels of the validation gain.
    :param str precision: ``"fp32"`` or ``"bf16"`` (:data:`PRECISIONS`): the forward pass of
        this invocation's steps. Not a setting that fixes the run: a run may be resumed in
        another precision; ``precisions`` in the state records ``{"from_step", "precision"}``
        per change (a resumed run repeats bit for bit only in the precision it ran in).
        Validation always runs in float32.
    :return: the training state (what ``training_state.json`` holds).
    :raises FileExistsError: when ``out`` holds a run and neither ``resume`` nor ``overwrite``.
    :raises ValueError: when resuming with settings that would change the run, or for a batch
        of the wrong shape.
    :raises FloatingPointError: for a loss that is not finite.
    """
    import numpy as np
    import torch
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    from pnpkit.priors import randn_like

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(f"parametrisation must be one of {', '.join(map(repr, PARAMETRISATIONS))}, "
                         f"got {parametrisation!r}")
    unknown = sorted(set(edm or {}) - set(EDM_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown EDM setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(EDM_DEFAULTS)}")
    is_edm = parametrisation == "edm"
    edm_settings = {k: float(v) for k, v in {**EDM_DEFAULTS, **(edm or {})}.items()}
    out = Path(out)
    ckpt, state_json = out / "training_state.pt", out / "training_state.json"
    fixed = {"seed": int(seed), "batch_size": int(batch_size), **(settings or {}),
             "lr": float(lr), "warmup_steps": int(warmup_steps)}
    if is_edm:  # a DDPM run's recorded settings stay as they were
        fixed.update(parametrisation="edm", edm=edm_settings)
    saved: dict[str, Any] | None = None
    full = None if model_config is None else normalise({**(defaults or {}), **model_config})
    if ckpt.exists() and (resume or not overwrite):
        if not resume:
            raise FileExistsError(f"{out} already holds a training run (training_state.pt); pass "
                                  "resume=True (--resume) to continue it, or choose another folder")
        saved = torch.load(ckpt, weights_only=True)
        # The state saved with the weights, not the JSON copy: a run killed between the two
        # writes still resumes consistently.
        state = json.loads(saved["state"])
        changed = [f"{k}={v} (the run has {state.get(k)})" for k, v in fixed.items()
                   if state.get(k) != v]
        if state.get("parametrisation", "ddpm") != parametrisation and "parametrisation" not in fixed:
            changed.append(f"parametrisation={parametrisation} (the run has "
                           f"{state.get('parametrisation')})")
        if full is not None and full != state["model_config"]:
            changed.append("model_config")
        if changed:
            raise ValueError(f"cannot resume {out} with other settings: {', '.join(changed)}; "
                             "keep them, or train into another folder")
        config = state["model_config"]
        state["schedule_steps"] = int(schedule_steps or max(steps, state["schedule_steps"]))
    else:
        config = full if full is not None else normalise(defaults or {})
        state = {**fixed, "step": 0, "seconds": 0.0, "losses": [],
                 "schedule_steps": int(schedule_steps or steps), "model_config": config,
                 **(info or {}), "data_stream": DATA_STREAM, "ema": dict(EMA),
                 "objective": ("EDM denoising loss: ln sigma ~ N(p_mean, p_std^2), weight "
                               "(sigma^2 + sigma_data^2) / (sigma sigma_data)^2"
                               if is_edm else "DDPM epsilon-prediction MSE"),
                 "optimizer": "AdamW (weight decay 0), warm-up + cosine learning rate, "
                              "gradient norm clipped to 1"}

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        torch.manual_seed(seed)
        model = model_cls(**config)
        scheduler = ddpm_scheduler()
        if check_model is not None:
            check_model(model)
        precond = None
        if is_edm:
            from .edm import EDMPrecond

            precond = EDMPrecond(model, sigma_data=edm_settings["sigma_data"],
                                 sigma_min=edm_settings["sigma_min"],
                                 sigma_max=edm_settings["sigma_max"])
        params = list(model.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        ema = EMAModel(params, **EMA)
        if saved is not None:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            ema.load_state_dict(saved["ema"])
            torch.set_rng_state(saved["torch_rng"])
        state["parameters"] = sum(p.numel() for p in params)
        state["threads"] = torch.get_num_threads()
        alphas_cumprod = scheduler.alphas_cumprod.to(torch.float32)
        num_t = int(scheduler.config.num_train_timesteps)
        out.mkdir(parents=True, exist_ok=True)

        def save() -> None:
            ema.store(params)
            ema.copy_to(params)
            if precond is not None:
                from .edm import save_edm

                save_edm(precond, out)
            else:
                model.save_pretrained(out / "unet", safe_serialization=True)
            ema.restore(params)
            if precond is None:
                scheduler.save_pretrained(out / "scheduler")
            blob = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "ema": ema.state_dict(), "torch_rng": torch.get_rng_state(),
                    "state": json.dumps(state)}
            _write_atomic(ckpt, lambda p: torch.save(blob, p))
            _write_atomic(state_json, lambda p: p.write_text(json.dumps(state, indent=1)))

        val_batch = None
        if validation is not None:
            val_batch = torch.as_tensor(np.asarray(validation, dtype=np.float32)
                                        if not isinstance(validation, torch.Tensor)
                                        else validation).float()
            channels = int(model.config.in_channels)
            if val_batch.dim() != len(spatial) + 2 or val_batch.shape[1] != channels:
                raise ValueError(f"the validation batch has shape {tuple(val_batch.shape)}; "
                                 f"expected (N, {channels}, {', '.join('...' for _ in spatial)}) "
                                 "clean signals in [-1, 1]")
        every = int(validate_every or save_every)
        if val_batch is not None:
            state.setdefault("validation", [])
        val_prior: Any = None

        def validate(step: int) -> dict[str, float]:
            nonlocal val_prior
            if val_prior is None:
                if precond is not None:
                    from .edm import EDMPrior

                    val_prior = EDMPrior(precond, name=desc)
                else:
                    from .diffusion import DiffusersPrior

                    # dims: the signals' spatial rank (a 1-D network's are (B, C, L)).
                    prior_cls = type("ValidationPrior", (DiffusersPrior,), {"dims": len(spatial)})
                    val_prior = prior_cls(model, scheduler, name=desc, check_size=False)
            ema.store(params)
            ema.copy_to(params)
            model.eval()
            try:
                gains = denoising_gain(val_prior, val_batch, tuple(validation_sigmas), seed)
            finally:
                model.train()
                ema.restore(params)
            state["validation"] = [v for v in state["validation"] if v["step"] != step]
            # seconds: the run's time at this step (earlier validations included)
            state["validation"].append({"step": step, "seconds": state["seconds"],
                                        "gain_db": gains})
            return gains

        def shown(gains: dict[str, float]) -> str:
            return "/".join(f"{g:+.1f}" for g in gains.values())

        start, began = state["step"], time.perf_counter()
        precisions = state.setdefault("precisions", [{"from_step": 0, "precision": "fp32"}])
        if precisions[-1]["precision"] != precision:
            if precisions[-1]["from_step"] == start:
                precisions.pop()
            precisions.append({"from_step": start, "precision": precision})
        device_type = next(model.parameters()).device.type
        autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")
        seconds_before = float(state["seconds"])
        state["stopped_by"] = "steps"
        bar = tqdm(range(start, steps), initial=start, total=steps, disable=not progress,
                   desc=f"{desc} ({state['parameters'] / 1e6:.2f} M params)")
        want = (batch_size, int(model.config.in_channels), *spatial)
        model.train()
        for step in bar:
            batch = sampler.sample(batch_size, np.random.default_rng([seed, step]))
            x0 = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            if tuple(x0.shape) != want:
                raise ValueError(f"the sampler gave a batch of shape {tuple(x0.shape)}, expected "
                                 f"{want}")
            g = torch.Generator().manual_seed(stream_seed(seed, step))
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, lr, warmup_steps, state["schedule_steps"])
            if precond is not None:
                n = torch.randn(batch_size, generator=g)
                sig = (edm_settings["p_mean"] + edm_settings["p_std"] * n).exp()
                noise = randn_like(x0, g)
                view = (-1, *([1] * (x0.dim() - 1)))
                sd = edm_settings["sigma_data"]
                weight = (sig**2 + sd**2) / (sig * sd) ** 2
                with autocast:
                    denoised = precond(x0 + sig.view(view) * noise, sig).float()
                loss = (weight.view(view) * (denoised - x0) ** 2).mean()
            else:
                t = torch.randint(0, num_t, (batch_size,), generator=g)
                noise = randn_like(x0, g)
                a = alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1)))
                x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
                with autocast:
                    predicted = model(x_t, t).sample.float()
                loss = torch.nn.functional.mse_loss(predicted, noise)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss is {value} at step {step}; lower the learning "
                                         f"rate (now {lr}) or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            ema.step(params)
            state["step"] = step + 1
            state["seconds"] = round(seconds_before + time.perf_counter() - began, 3)
            state["losses"].append(round(value, 6))
            recent = state["losses"][-50:]
            postfix = {"loss": f"{sum(recent) / len(recent):.4f}"}
            if val_batch is not None and (step + 1) % every == 0:
                postfix["val_dB"] = shown(validate(step + 1))
            elif state.get("validation"):
                postfix["val_dB"] = shown(state["validation"][-1]["gain_db"])
            bar.set_postfix(postfix)
            if (step + 1) % save_every == 0:
                save()
            if max_minutes is not None and time.perf_counter() - began > 60 * max_minutes:
                state["stopped_by"] = "max_minutes"
                break
        bar.close()
        if val_batch is not None and all(v["step"] != state["step"] for v in state["validation"]):
            validate(state["step"])
        save()
        return state
    finally:
        torch.set_num_threads(previous_threads)
