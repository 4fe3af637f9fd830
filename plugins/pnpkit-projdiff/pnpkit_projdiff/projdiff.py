"""ProjDiff: optimise x0 and an auxiliary noisy sample together by projected gradient descent."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pnpkit import operators as ops
from pnpkit.operators import Operator
from pnpkit.priors import Prior, karras_sigmas, randn_like
from pnpkit.solvers import IterativeSolver, SolveContext, check_choice

__all__ = ["DecomposableSpectral", "FFTSpectral", "ProjDiff", "Spectral", "ddpm_timesteps",
           "decomposable", "equivalent_noise_std", "fourier", "karras_sigmas", "range_gain",
           "spectral_of", "truncated_projection"]  # karras_sigmas: re-exported from the core

#: A A^T counts as c I on the range of A when it is within this relative distance of it.
PROPORTIONAL = 1e-3


def ddpm_timesteps(steps: int, total: int) -> list[int] | list[float]:
    """``steps`` timesteps of a ``total``-step schedule, largest first, the last one 0.

    The authors' stride ``total / steps`` (``range(0, total, total // steps)`` reversed when
    ``steps`` divides ``total``: 990, 980, ..., 0 for 100 of 1000), rounded; more steps than
    the schedule has are fractional timesteps, evenly from ``total - 1`` down to 0 (the
    diffusion prior's ``denoise`` runs the network at fractional timesteps).

    >>> ddpm_timesteps(100, 1000)[:2], ddpm_timesteps(100, 1000)[-1]
    ([990, 980], 0)
    >>> ddpm_timesteps(300, 1000)[-3:], len(ddpm_timesteps(300, 1000))
    ([7, 3, 0], 300)
    >>> ddpm_timesteps(3, 2)
    [1.0, 0.5, 0.0]
    """
    if steps <= total:
        return [round((steps - 1 - i) * total / steps) for i in range(steps)]
    return [(steps - 1 - i) * (total - 1) / (steps - 1) for i in range(steps)]


def range_gain(operator: Any, like: Tensor) -> tuple[float, float]:
    """``(c, d)``: the gain of ``A A^T`` on the range of ``A`` and its distance from ``c I``.

    One probe ``u = A z`` (``z`` drawn from a fixed generator, like one item of ``like``):
    ``c = <A A^T u, u> / <u, u>`` and ``d = ||A A^T u - c u|| / ||c u||``. ``d`` is 0 (to
    float precision) exactly when ``A A^T = c I`` on the range: inpainting (c = 1), r-fold
    average pooling (c = 1 / r^2), the mixture of K sources (c = K).
    """
    z = randn_like(like[:1], torch.Generator().manual_seed(0))
    with torch.no_grad():
        u = operator.A(z)
        w = operator.A(operator.A_adjoint(u))
    uu = float((u.conj() * u).real.sum())
    c = float((w.conj() * u).real.sum()) / uu
    d = float((w - c * u).abs().pow(2).sum().sqrt()) / (abs(c) * math.sqrt(uu))
    return c, d


def equivalent_noise_std(operator: Any, like: Tensor, sigma_y: float) -> float:
    """``sigma_eq``: the std of measurement noise of std ``sigma_y`` seen in signal space.

    The operator's own ``equivalent_noise_variance(variance)`` when it has one (phase
    retrieval: the padded over the original pixel count, 2.25 for 256 -> 384), else
    ``sigma_y / sqrt(c)`` with ``c`` the gain of ``A A^T`` on its range (:func:`range_gain`):
    ``sigma_y`` for inpainting, ``r sigma_y`` for r-fold average pooling, as the authors'
    ``eq_var``. Exact where ``A A^T`` is proportional to I on its range; elsewhere the
    authors use one level per singular value instead (:class:`ProjDiff`'s SVD scheme).

    :param like: a signal-shaped tensor (its first item's shape is probed).
    """
    if sigma_y <= 0:
        return 0.0
    own = getattr(operator, "equivalent_noise_variance", None)
    if callable(own):
        return math.sqrt(float(own(float(sigma_y) ** 2)))
    c, _ = range_gain(operator, like)
    return float(sigma_y) / math.sqrt(c)


class Spectral:
    """The SVD ``A = U diag(s) V^T`` of a linear operator, in coordinates ``c = V^T x``.

    Computed densely: ``A`` applied to the ``n`` unit signals of one item's shape gives the
    ``(m, n)`` matrix, whose full SVD (float64) gives ``V`` (n x n, null space included).
    Singular values below ``threshold`` times the largest are set to 0 (their coordinates
    then count as null space), as the authors' deblurring SVD does with 3e-2.

    :param operator: the linear operator.
    :param like: a signal-shaped tensor (B, *shape).
    :param y: the measurements (B, ...), for ``ybar = (U^T y) / s`` (the pseudo-inverse's
        coordinates) on the kept singular values.
    :param float threshold: relative cut-off of the singular values.
    """

    def __init__(self, operator: Any, like: Tensor, y: Tensor, threshold: float) -> None:
        self.shape = tuple(like.shape[1:])
        self.dtype, self.device = like.dtype, like.device
        n = like[0].numel()
        cols = []
        with torch.no_grad():
            for start in range(0, n, 256):
                k = min(256, n - start)
                e = torch.zeros(k, n, dtype=like.dtype, device=like.device)
                e[torch.arange(k), start + torch.arange(k)] = 1
                cols.append(operator.A(e.view(k, *self.shape)).reshape(k, -1).to(torch.float64))
        matrix = torch.cat(cols).T  # (m, n)
        u, s, vh = torch.linalg.svd(matrix, full_matrices=True)
        keep = s > threshold * float(s.max()) if s.numel() else s > 0
        self.vh = vh  # rows: the right singular vectors
        self.s = torch.zeros(n, dtype=torch.float64, device=like.device)
        self.s[: s.numel()] = torch.where(keep, s, torch.zeros_like(s))
        self.kept = self.s > 0
        uty = y.reshape(y.shape[0], -1).to(torch.float64) @ u  # (B, m): U^T y per item
        self.ybar = torch.zeros(y.shape[0], n, dtype=torch.float64, device=like.device)
        r = s.numel()
        self.ybar[:, :r] = torch.where(keep, uty[:, :r] / s.clamp_min(1e-300), torch.zeros_like(s))

    def vt(self, x: Tensor) -> Tensor:
        """``V^T x`` per item, (B, n) float64."""
        return x.reshape(x.shape[0], -1).to(torch.float64) @ self.vh.T

    def v(self, c: Tensor) -> Tensor:
        """``V c`` per item, shaped and typed like the signal."""
        return (c @ self.vh).view(c.shape[0], *self.shape).to(self.dtype)


def decomposable(operator: Any) -> bool:
    """Whether ``operator`` carries its own real SVD, as deepinv's ``DecomposablePhysics``:
    ``V_adjoint``, ``V``, ``U_adjoint`` and real singular values ``mask`` on the coordinates
    (``sr-avgpool``, ``separable-gaussian-blur``, inpainting). FFT-based ones (complex
    ``mask``: circular blurs) are not used this way."""
    mask = getattr(operator, "mask", None)
    return (isinstance(mask, Tensor) and not mask.is_complex()
            and all(callable(getattr(operator, f, None)) for f in ("V_adjoint", "V", "U_adjoint")))


class DecomposableSpectral:
    """:class:`Spectral`'s interface on an operator's own SVD (:func:`decomposable`), at any size.

    Coordinates ``c = V^T x`` are the operator's ``V_adjoint(x)`` flattened per item, the
    singular values its ``mask``. Those below ``threshold`` times the largest are set to 0,
    unless the operator truncated its own SVD (``svd_threshold`` attribute:
    ``separable-gaussian-blur`` drops the 1-D singular values under 3e-2 as the authors'
    code does; thresholding the 2-D products again would drop more than theirs).

    :param operator: the decomposable operator.
    :param like: a signal-shaped tensor (B, *shape).
    :param y: the measurements (B, ...).
    :param float threshold: relative cut-off of the singular values.
    """

    def __init__(self, operator: Any, like: Tensor, y: Tensor, threshold: float) -> None:
        self.operator = operator
        self.shape = tuple(like.shape[1:])
        self.dtype, self.device = like.dtype, like.device
        with torch.no_grad():
            probe = operator.V_adjoint(torch.zeros_like(like[:1]))
            self.coords = tuple(probe.shape[1:])
            s = operator.mask.to(torch.float64).abs().expand(1, *self.coords).reshape(-1)
        if getattr(operator, "svd_threshold", None) is None and s.numel() and threshold > 0:
            s = torch.where(s > threshold * float(s.max()), s, torch.zeros_like(s))
        self.s = s.to(like.device)
        self.kept = self.s > 0
        with torch.no_grad():
            uty = operator.U_adjoint(y).reshape(y.shape[0], -1).to(torch.float64)
        self.ybar = torch.where(self.kept, uty / self.s.clamp_min(1e-300), torch.zeros_like(uty))

    def vt(self, x: Tensor) -> Tensor:
        """``V^T x`` per item, (B, n) float64."""
        return self.operator.V_adjoint(x).reshape(x.shape[0], -1).to(torch.float64)

    def v(self, c: Tensor) -> Tensor:
        """``V c`` per item, shaped and typed like the signal."""
        out = self.operator.V(c.to(self.dtype).view(c.shape[0], *self.coords))
        return out.reshape(c.shape[0], *self.shape).to(self.dtype)


def fourier(operator: Any) -> bool:
    """Whether ``operator``'s ``A A^T`` is a Fourier multiplier on its output grid: its
    ``spectrum()`` (the singular values per frequency of the orthonormal 2-D DFT of the
    output's last two axes) is a tensor. ``super-resolution`` with circular padding (its
    default); None for other paddings."""
    spectrum = getattr(operator, "spectrum", None)
    return callable(spectrum) and isinstance(spectrum(), Tensor)


def _hermitian(s: Tensor) -> Tensor:
    """``(s(k) + s(-k)) / 2`` on the last two axes (frequency k and -k modulo the grid)."""
    mirror = torch.roll(torch.flip(s, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    return 0.5 * (s + mirror)


class FFTSpectral:
    """:class:`Spectral`'s interface for an operator whose ``A A^T`` is a Fourier multiplier
    (:func:`fourier`): exact, at any size, without a matrix.

    With ``F`` the orthonormal 2-D DFT of the output grid and ``s`` the operator's
    ``spectrum()`` (``A A^T = F^H diag(s^2) F``), the SVD ``A = U diag(s) V^T`` has ``U = F^H``
    and, on the row space, ``V_r^T x = (F A x) / s`` and ``V_r c = A^T F^H (c / s)``. The
    coordinates are those on the kept singular values (``s`` over ``threshold`` times the
    largest), complex with Hermitian symmetry (``s`` is symmetric in +/- frequency for a real
    filter, so every operation of the svd scheme keeps it and ``V_r c`` is real), followed by
    the rest of the signal as it is: the complement ``x - V_r V_r^T x`` (the null space and
    the cut singular values, level 0 in both schemes), one entry per signal entry. Flat
    ``(B, m + n)`` complex128 tensors: ``s``, ``kept`` and ``ybar`` are 0 (False) on the
    complement and on the cut frequencies, whose coordinates are 0 (they live in the
    complement). The scheme's noise is drawn in signal space and mapped by :meth:`vt`, so
    it is standard normal in these coordinates as in :class:`Spectral`'s.

    :param operator: the operator (its ``A``, ``A_adjoint`` and ``spectrum()``).
    :param like: a signal-shaped tensor (B, *shape).
    :param y: the measurements (B, ...).
    :param float threshold: relative cut-off of the singular values.
    """

    def __init__(self, operator: Any, like: Tensor, y: Tensor, threshold: float) -> None:
        self.operator = operator
        self.shape = tuple(like.shape[1:])
        self.dtype, self.device = like.dtype, like.device
        with torch.no_grad():
            out = tuple(operator.A(torch.zeros_like(like[:1], dtype=torch.float64)).shape[1:])
        s = operator.spectrum(torch.float64)
        name = type(operator).__name__
        if s is None or len(out) < 2 or tuple(s.shape[-2:]) != out[-2:]:
            raise ValueError(f"projdiff: {name}'s spectrum() is "
                             f"{None if s is None else tuple(s.shape)} and its output {out}: the "
                             "singular values must be given per frequency of the output's last "
                             "two axes (build the operator for this signal size)")
        self.out = out
        s = _hermitian(s.to(device=like.device, dtype=torch.float64)).expand(1, *out)
        self.scale = s  # the singular values, the coordinates' scale
        self.keep = s > threshold * float(s.max()) if threshold > 0 else s > 0
        self.m = s.numel()
        cut = torch.where(self.keep, s, torch.zeros_like(s)).reshape(-1)
        self.s = torch.cat([cut, torch.zeros(like[0].numel(), dtype=torch.float64, device=like.device)])
        self.kept = self.s > 0
        with torch.no_grad():
            ybar = self._range_of(y.to(torch.float64), measured=True)
        rest = torch.zeros(y.shape[0], like[0].numel(), dtype=ybar.dtype, device=like.device)
        self.ybar = torch.cat([ybar.reshape(y.shape[0], -1), rest], dim=1)

    def _range_of(self, z: Tensor, measured: bool = False) -> Tensor:
        """``(F A x) / s`` on the kept frequencies, 0 elsewhere (``F z / s`` for a measurement)."""
        fz = torch.fft.fft2(z if measured else self.operator.A(z), norm="ortho")
        return torch.where(self.keep, fz / self.scale.clamp_min(1e-300), torch.zeros_like(fz))

    def _signal_of(self, r: Tensor) -> Tensor:
        """``V_r r = A^T F^H (r / s)`` (real: ``r`` is Hermitian-symmetric)."""
        z = torch.fft.ifft2(torch.where(self.keep, r / self.scale.clamp_min(1e-300),
                                        torch.zeros_like(r)), norm="ortho").real
        return self.operator.A_adjoint(z)

    def vt(self, x: Tensor) -> Tensor:
        """``V^T x`` per item: the kept coordinates, then the complement; (B, m + n) complex128."""
        b = x.shape[0]
        x = x.to(torch.float64)
        with torch.no_grad():
            r = self._range_of(x)
            rest = x - self._signal_of(r)
        return torch.cat([r.reshape(b, -1), rest.reshape(b, -1).to(r.dtype)], dim=1)

    def v(self, c: Tensor) -> Tensor:
        """``V c`` per item, shaped and typed like the signal (the complement part projected
        onto the complement again, so any ``c`` maps as ``V`` would)."""
        b = c.shape[0]
        r = c[:, : self.m].reshape(b, *self.out)
        rest = c[:, self.m:].real.reshape(b, *self.shape)
        with torch.no_grad():
            rest = rest - self._signal_of(self._range_of(rest))
            return (self._signal_of(r) + rest).to(self.dtype)

    def truncated_projection(self, x: Tensor) -> Tensor:
        """:func:`truncated_projection` without the complement (which it leaves as it is):
        ``x + V_r (kept * (ybar - V_r^T x))``."""
        with torch.no_grad():
            r = self._range_of(x.to(torch.float64))
            d = self.ybar[:, : self.m].reshape(-1, *self.out) - r
            return (x.to(torch.float64) + self._signal_of(d)).to(self.dtype)


def spectral_of(operator: Any, like: Tensor, y: Tensor,
                threshold: float) -> Spectral | DecomposableSpectral | FFTSpectral:
    """The truncated SVD of a linear operator: its own (:class:`DecomposableSpectral`) when it
    has one (:func:`decomposable`), the Fourier one (:class:`FFTSpectral`) where ``A A^T`` is a
    Fourier multiplier (:func:`fourier`), else computed densely (:class:`Spectral`)."""
    if decomposable(operator):
        return DecomposableSpectral(operator, like, y, threshold)
    if fourier(operator):
        return FFTSpectral(operator, like, y, threshold)
    return Spectral(operator, like, y, threshold)


def _beyond_hint(operator: Any) -> str:
    """What makes the SVD exact for a signal beyond ``svd_max_entries``."""
    padding = getattr(operator, "padding", None)
    if callable(getattr(operator, "spectrum", None)) and padding not in (None, "circular"):
        return (f"set the operator's padding = \"circular\" (padding {padding!r} makes A A^T no "
                "Fourier multiplier; circular gives the exact SVD at any size)")
    return "raise svd_max_entries"


@dataclass(kw_only=True)
class ProjDiff(IterativeSolver):
    """ProjDiff (arXiv:2406.06959): the diffusion denoiser as a truncated gradient, then a projection.

    As the authors' code (``efficient_generalized_steps*``) runs it, in variance-exploding
    form: noise levels ``sigma_1 > ... > sigma_S`` (the DDPM timesteps' levels
    ``sqrt((1 - abar_t) / abar_t)``, the grid ending at t = 0, or Karras levels as the audio
    model), the prior's denoiser ``D(x, sigma)`` (Tweedie), ``x_0 = D(sigma_1 z, sigma_1)``,
    then per level, ``repeats`` times:

    .. math::

        x &= x_0 + \\sigma_s\\,\\epsilon, \\quad \\epsilon \\sim \\mathcal N(0, I)\\\\
        v &\\leftarrow \\beta v + (1 - \\beta)\\,\\big(D(x, \\sigma_s) - x_0\\big)
             \\quad (v = D(x, \\sigma_s) - x_0 \\text{ at the first step})\\\\
        x_0 &\\leftarrow P_y(x_0 + \\eta\\, v)

    The step direction is the denoiser residual (the gradient through the denoiser is
    truncated: no backpropagation), ``P_y`` the operator's projection onto {x : A x = y}
    (:func:`pnpkit.operators.project`). :meth:`step` is one level of that loop; :meth:`setup`
    puts the levels, the momentum and the noisy-measurement quantities in the state.

    Nonlinear operators (phase retrieval) use their own ``project`` (magnitude replacement):
    the sample is drawn around ``P_y(x_0)``, the residual and the step taken from ``x_0``,
    then projected, as the authors' phase-retrieval loop.

    Noisy measurements (``sigma_y > 0``), the authors' two schemes:

    - **scalar** (operators with ``A A^T = c I`` on their range: inpainting, average pooling,
      mixtures; and phase retrieval): one equivalent level ``sigma_eq``
      (:func:`equivalent_noise_std`; ``alpha_obs = 1 / (1 + sigma_eq^2)``) and an auxiliary
      sample ``x_obs``, first ``x_0 + sigma_eq z``. While ``sigma_s >= sigma_eq``:
      ``x = x_obs + sqrt(sigma_s^2 - sigma_eq^2) n``, ``x_0 = D(x, sigma_s)`` and
      ``x_obs = P_y(x_0 + sigma_eq z)``. Below: ``x_obs`` is frozen (its null-space noise
      included), ``x = x_0 + sigma_s (x_obs - x_0) / sigma_eq`` and
      ``x_0 <- x_0 + eta (D(x, sigma_s) - x_0)``, never projected.
    - **svd** (any other linear operator: bicubic SR, deblurring): the same per coordinate of
      the SVD ``A = U diag(s) V^T``, each with its own level ``sigma_y / s_i`` (0 on the null
      space), the auxiliary sample's range coordinates held at ``(U^T y)_i / s_i``
      (the authors' ``efficient_generalized_steps_noisy_SVD``; singular values below
      ``svd_threshold`` times the largest count as 0, their deblurring's 3e-2). The SVD is
      computed densely (:class:`Spectral`) for signals of at most ``svd_max_entries``
      entries, or at any size taken from a decomposable operator's own SVD
      (:class:`DecomposableSpectral`) or from the Fourier multiplier ``A A^T`` of
      ``super-resolution`` with circular padding (:class:`FFTSpectral`); beyond,
      ``"auto"`` falls back to the scalar scheme with a warning. The noise is drawn in
      signal space and rotated by ``V^T`` (standard normal in the coordinates, the same
      draw whichever form the SVD takes).

    Noiseless measurements through a linear operator whose ``A A^T`` is not proportional to
    I (deblurring, bicubic SR): ``P_y(x) = x + A^+_tau (y - A x)``, the pseudo-inverse with
    the singular values under ``svd_threshold`` times the largest set to 0, as the authors'
    deblurring (their ``H_pinv`` on an SVD with ``ZERO = 3e-2``): the components the blur all
    but removes are left to the prior instead of being inverted. Same SVDs as the svd scheme
    (``projection = "operator"``: the operator's own projection, the exact ``x + A^+(y - A x)``).

    :param str preset: ``sr4``, ``random-inpainting``, ``box-inpainting``,
        ``gaussian-deblur`` (with ``-noisy`` variants), ``phase-retrieval``,
        ``phase-retrieval-noisy``, ``separation`` (music source separation).
    :param int iterations: number of noise levels S.
    :param int repeats: inner repeats N per level.
    :param float eta: step size.
    :param float beta: momentum (0 for images, 0.5 for audio).
    :param str levels: ``"ddpm"`` (S of the prior's timesteps: 990, 980, ..., 0 for S = 100,
        :func:`ddpm_timesteps`) or ``"karras"``.
    :param float sigma_min: smallest Karras level.
    :param float sigma_max: largest Karras level.
    :param float rho: Karras spacing exponent.
    :param float clamp: clamp the denoiser's output to [-clamp, clamp] (0: never; the
        separation preset: 1, as the MSDM model's denoiser the authors' music code uses).
    :param bool noisy: use the noisy-measurement scheme when the operator has noise.
    :param str noisy_scheme: ``"auto"`` (the authors' choice: scalar where ``A A^T`` is
        proportional to I or the operator is nonlinear, svd otherwise), ``"scalar"`` or
        ``"svd"``.
    :param float svd_threshold: relative cut-off of the singular values of the svd scheme and
        of the noiseless projection.
    :param str projection: ``"auto"`` (the authors': the truncated pseudo-inverse where
        ``A A^T`` is not proportional to I, the operator's projection elsewhere) or
        ``"operator"`` (always the operator's projection).
    :param int svd_max_entries: the largest signal (entries per item) whose SVD is computed.

    >>> from pnpkit.testing import GaussianDiffusionPrior, toy_problem
    >>> op, _, x, y = toy_problem(n=64, m=40)
    >>> ProjDiff(iterations=10, repeats=2).solve(y.float(), op, GaussianDiffusionPrior()).nfe
    21
    """

    name = "projdiff"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "sr4": dict(iterations=100, eta=1.7),
        "random-inpainting": dict(iterations=100, eta=1.1),
        "box-inpainting": dict(iterations=100, eta=1.1),
        "gaussian-deblur": dict(iterations=100, eta=0.9),
        "sr4-noisy": dict(iterations=100, eta=0.5),
        "random-inpainting-noisy": dict(iterations=100, eta=1.0),
        "box-inpainting-noisy": dict(iterations=100, eta=1.0),
        "gaussian-deblur-noisy": dict(iterations=100, eta=0.1),
        "phase-retrieval": dict(iterations=1000, eta=1.5),
        "phase-retrieval-noisy": dict(iterations=1000, eta=1.9),
        "separation": dict(iterations=150, repeats=5, eta=0.1, beta=0.5, levels="karras",
                           sigma_min=1e-4, sigma_max=1.0, rho=7.0, clamp=1.0),
    }
    BASE: ClassVar[dict[str, Any]] = dict(iterations=100, eta=1.0, repeats=1, beta=0.0, levels="ddpm",
                                          sigma_min=1e-4, sigma_max=1.0, rho=7.0, clamp=0.0)

    preset: str | None = None
    iterations: int | None = None  # type: ignore[assignment]
    repeats: int | None = None
    eta: float | None = None
    beta: float | None = None
    levels: str | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None
    clamp: float | None = None
    noisy: bool = True
    noisy_scheme: str = "auto"
    svd_threshold: float = 3e-2
    svd_max_entries: int = 4096
    projection: str = "auto"

    def __post_init__(self) -> None:
        self.apply_preset()
        check_choice(self.name, "levels", self.levels, ("ddpm", "karras"))
        check_choice(self.name, "noisy_scheme", self.noisy_scheme, ("auto", "scalar", "svd"))
        check_choice(self.name, "projection", self.projection, ("auto", "operator"))
        if not 0 <= self.svd_threshold < 1:
            raise ValueError(f"projdiff: svd_threshold must be in [0, 1) (singular values under it "
                             f"times the largest count as 0; 0.03 the authors'), got "
                             f"{self.svd_threshold}")
        if self.repeats < 1:
            raise ValueError(f"projdiff: repeats must be >= 1, got {self.repeats}")
        if not self.clamp >= 0:
            raise ValueError(f"projdiff: clamp must be >= 0 (0: never clamp), got {self.clamp}")
        super().__post_init__()

    # -- noise levels ------------------------------------------------------------------------
    def timesteps(self, prior: Prior) -> list[Any]:
        """The S timesteps of ``"ddpm"`` levels (:func:`ddpm_timesteps`), None for Karras."""
        if self.levels == "karras":
            return [None] * int(self.iterations)
        return list(ddpm_timesteps(int(self.iterations), int(prior.num_timesteps)))

    def noise_levels(self, prior: Prior) -> list[float]:
        """The S levels, largest first (``"ddpm"`` levels need a diffusion prior's schedule)."""
        if self.levels == "karras":
            return karras_sigmas(int(self.iterations), float(self.sigma_min), float(self.sigma_max),
                                 float(self.rho))
        out = []
        probe = torch.zeros(1, dtype=torch.float64)
        for t in self.timesteps(prior):
            a = float(prior.abar(t, probe).flatten()[0])
            out.append(math.sqrt((1 - a) / a))
        return out

    def denoised(self, ctx: SolveContext, x: Tensor, sigma: float, t: Any) -> Tensor:
        """``D(x, sigma)``: Tweedie at the integer timestep ``t`` of a ``"ddpm"`` level (the
        network at exactly the authors' timestep), else the prior's ``denoise``; clamped to
        ``[-clamp, clamp]`` when ``clamp > 0``."""
        prior = ctx.prior
        if isinstance(t, int):
            a = prior.abar(t, x)
            out = prior.x0(a.sqrt() * x, t)
        else:
            out = prior.denoise(x, sigma)
        return out.clamp(-self.clamp, self.clamp) if self.clamp > 0 else out

    # -- the schemes -----------------------------------------------------------------------
    def scheme(self, op: Operator, x: Tensor, sigma_y: float) -> str:
        """``"noiseless"``, ``"scalar"`` or ``"svd"`` for this operator and noise level."""
        if sigma_y <= 0:
            return "noiseless"
        name = type(op).__name__
        if not ops.is_linear(op):
            if not callable(getattr(op, "equivalent_noise_variance", None)):
                raise ValueError(f"projdiff: noisy measurements through the nonlinear operator {name} "
                                 "need its equivalent_noise_variance(variance) (the noise variance "
                                 "seen in signal space); give it one or set noisy = false")
            return "scalar"
        if self.noisy_scheme == "scalar":
            return "scalar"
        _, deviation = range_gain(op, x)
        if self.noisy_scheme == "auto" and deviation < PROPORTIONAL:
            return "scalar"
        n = x[0].numel()
        if n <= int(self.svd_max_entries) or decomposable(op) or fourier(op):
            return "svd"
        hint = _beyond_hint(op)
        if self.noisy_scheme == "svd":
            raise ValueError(f"projdiff: noisy_scheme 'svd' computes the SVD of {name} densely, for "
                             f"signals of at most svd_max_entries = {self.svd_max_entries} entries, "
                             f"and this one has {n}; {hint} or set noisy_scheme = 'scalar'")
        warnings.warn(f"projdiff: A A^T of {name} is not proportional to I, where the authors use "
                      f"one noise level per singular value, but a signal of {n} entries is beyond "
                      f"svd_max_entries = {self.svd_max_entries}: one level for all is used "
                      f"(noisy_scheme = 'scalar'); {hint} for the authors' scheme",
                      stacklevel=2)
        return "scalar"

    # -- the loop ----------------------------------------------------------------------------
    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        """The levels and timesteps, ``x_0 = D(sigma_1 z, sigma_1)``, the momentum (None until
        the first step), and for noisy measurements the scheme, ``sigma_eq`` and the auxiliary
        sample (or, for the svd scheme, the SVD and the per-coordinate levels)."""
        prior, op = ctx.prior, ctx.operator
        levels, ts = self.noise_levels(prior), self.timesteps(prior)
        sigma_y = ops.noise_sigma(op) if self.noisy else 0.0
        scheme = self.scheme(op, x, sigma_y)
        with torch.no_grad():
            x0 = self.denoised(ctx, levels[0] * ctx.randn_like(x), levels[0], ts[0])
        state: dict[str, Any] = {"x": x0, "v": None, "levels": levels, "timesteps": ts,
                                 "linear": ops.is_linear(op), "scheme": scheme, "sigma_eq": 0.0,
                                 "obs": None, "pinv": None}
        if scheme == "noiseless" and state["linear"]:
            state["pinv"] = self.truncated_svd(op, x, ctx.y)
        if scheme == "scalar":
            sigma_eq = equivalent_noise_std(op, x, sigma_y)
            state.update(sigma_eq=sigma_eq, obs=x0 + sigma_eq * ctx.randn_like(x0))
        elif scheme == "svd":
            spectral = spectral_of(op, x, ctx.y, float(self.svd_threshold))
            per = torch.where(spectral.kept, sigma_y / spectral.s.clamp_min(1e-300),
                              torch.zeros_like(spectral.s))
            c0 = spectral.vt(x0)
            state.update(spectral=spectral, sigma_eq=per, obs=c0 + per * spectral.vt(ctx.randn_like(x0)))
        return state

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        """Level k, ``repeats`` times, in the state's scheme."""
        sigma, t = state["levels"][k], state["timesteps"][k]
        x0, v, obs = state["x"], state["v"], state["obs"]
        with torch.no_grad():
            for _ in range(int(self.repeats)):
                if state["scheme"] == "scalar":
                    x0, obs = self._scalar(ctx, x0, obs, sigma, t, state["sigma_eq"])
                elif state["scheme"] == "svd":
                    x0, obs = self._svd(ctx, x0, obs, sigma, t, state)
                else:
                    x0, v = self._noiseless(ctx, x0, v, sigma, t, state["linear"], state["pinv"])
        return {**state, "x": x0, "v": v, "obs": obs, "log": {"sigma": sigma}}

    def _noiseless(self, ctx: SolveContext, x0: Tensor, v: Tensor | None, sigma: float, t: Any,
                   linear: bool, pinv: Any) -> tuple[Tensor, Tensor]:
        # Nonlinear (phase retrieval): the sample around P_y(x0), the residual from x0.
        at = x0 if linear else self.project(ctx, x0)
        d = self.denoised(ctx, at + sigma * ctx.randn_like(at), sigma, t) - x0
        v = d if v is None else self.beta * v + (1 - self.beta) * d
        step = x0 + self.eta * v
        return (self.project(ctx, step) if pinv is None else truncated_projection(pinv, step)), v

    def truncated_svd(self, op: Operator, x: Tensor, y: Tensor) -> Any:
        """The SVD the noiseless projection ``x + A^+_tau (y - A x)`` uses (:func:`spectral_of`,
        ``svd_threshold``), or None where the operator's own projection is used: with
        ``projection = "operator"``, where ``A A^T`` is proportional to I (all singular values
        equal: nothing to cut), where an operator's Fourier SVD (:class:`FFTSpectral`) cuts
        nothing at ``svd_threshold`` (its exact projection is the same), and beyond
        ``svd_max_entries`` for an operator without its own SVD (with a warning)."""
        if self.projection == "operator":
            return None
        _, deviation = range_gain(op, x)
        if deviation < PROPORTIONAL:
            return None
        n = x[0].numel()
        if n > int(self.svd_max_entries) and not decomposable(op) and not fourier(op):
            warnings.warn(f"projdiff: the authors' pseudo-inverse drops singular values under "
                          f"svd_threshold = {self.svd_threshold:g} of the largest, but the SVD of "
                          f"{type(op).__name__} is computed densely for signals of at most "
                          f"svd_max_entries = {self.svd_max_entries} entries and this one has {n}: "
                          "the operator's projection is used (projection = 'operator'); "
                          f"{_beyond_hint(op)} for the authors' projection", stacklevel=3)
            return None
        spectral = spectral_of(op, x, y, float(self.svd_threshold))
        if isinstance(spectral, FFTSpectral) and bool(spectral.keep.all()):
            # nothing under the threshold (bicubic SR x4 keeps all: its smallest singular value
            # is 0.49 of the largest): the truncated pseudo-inverse is the exact one, which the
            # operator's own projection computes in closed form, several times faster
            return None
        return spectral

    def _scalar(self, ctx: SolveContext, x0: Tensor, obs: Tensor, sigma: float, t: Any,
                sigma_eq: float) -> tuple[Tensor, Tensor]:
        if sigma >= sigma_eq:  # x_t from the auxiliary sample; x0 becomes the estimate
            x = obs + math.sqrt(sigma**2 - sigma_eq**2) * ctx.randn_like(obs)
            x0 = self.denoised(ctx, x, sigma, t)
            return x0, self.project(ctx, x0 + sigma_eq * ctx.randn_like(x0))
        x = x0 + sigma * (obs - x0) / sigma_eq  # the frozen sample's noise, scaled to sigma
        return x0 + self.eta * (self.denoised(ctx, x, sigma, t) - x0), obs

    def _svd(self, ctx: SolveContext, x0: Tensor, obs: Tensor, sigma: float, t: Any,
             state: dict[str, Any]) -> tuple[Tensor, Tensor]:
        spectral, per = state["spectral"], state["sigma_eq"]
        c0 = spectral.vt(x0)
        above = per <= sigma  # the null space (level 0) always
        # noise drawn in signal space and rotated: N(0, I) in any of the spectral forms' coordinates
        noise = spectral.vt(ctx.randn_like(x0))
        ct = torch.where(above, obs + (sigma**2 - per**2).clamp_min(0).sqrt() * noise,
                         c0 + sigma * (obs - c0) / per.clamp_min(1e-300))
        cn = spectral.vt(self.denoised(ctx, spectral.v(ct), sigma, t))
        c0 = torch.where(above, cn, c0 + self.eta * (cn - c0))
        obs = torch.where(above, cn + per * spectral.vt(ctx.randn_like(x0)), obs)
        obs = torch.where(spectral.kept, spectral.ybar, obs)
        return spectral.v(c0), obs

    def project(self, ctx: SolveContext, x: Tensor) -> Tensor:
        """``P_y(x)``: the operator's projection onto {x : A x = y}."""
        return ops.project(ctx.operator, x, ctx.y)


def truncated_projection(svd: Spectral | DecomposableSpectral | FFTSpectral, x: Tensor) -> Tensor:
    """``x + A^+_tau (y - A x) = x + V (kept * (ybar - V^T x))``: the coordinates on the kept
    singular values set to the pseudo-inverse's ``(U^T y)_i / s_i``, the others (null space and
    the cut singular values) left as they are."""
    if isinstance(svd, FFTSpectral):
        return svd.truncated_projection(x)
    c = svd.vt(x)
    return x + svd.v(torch.where(svd.kept, svd.ybar - c, torch.zeros_like(c)))
