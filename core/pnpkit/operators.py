"""What a solver may ask of a forward operator.

An operator speaks deepinv's physics language: ``A(x)``, ``A_adjoint(y)`` (linear ones),
``A_dagger(y)``, ``A_vjp(x, v)``, and a ``noise_model`` with a ``sigma``; any
``deepinv.physics.Physics`` is an operator as it is, and so is any object with those
methods (:class:`MatrixOperator` below is one without deepinv). Solvers never call those
methods directly when one of the functions here fits: each gives a sensible default where
an operator lacks the optional method.

Optional methods a solver uses when present:

- ``project(x, y)``: the projection onto {x : A x = y} (ProjDiff-type solvers);
- ``prox_l2(z, y, gamma)``: argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2 (deepinv's
  ``LinearPhysics`` has it);
- ``linear``: a bool that overrides the "has ``A_adjoint``" test of linearity;
- ``measurement_rate(rate)``: the sample rate of the measurement of a signal sampled at
  ``rate`` (an operator that changes the rate, e.g. a decimation; see :func:`measurement_rate`).

A registered operator may also say which signal shape yields a given measurement shape (its
``signal_shape`` registration metadata, read by :func:`infer_signal_shape`), so that a run on
the user's own measurement knows the size of the signal to restore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeGuard, runtime_checkable

import torch
from torch import Tensor

from .priors import randn_like
from .registry import Component, accepted, resolve


@runtime_checkable
class Operator(Protocol):
    """The part of deepinv's ``Physics`` interface every operator has: what solvers are typed with."""

    def A(self, x: Tensor, **kwargs: Any) -> Tensor: ...


@runtime_checkable
class LinearOperator(Operator, Protocol):
    """An :class:`Operator` with an adjoint (deepinv's ``LinearPhysics``); :func:`is_linear` tells."""

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor: ...


def is_linear(operator: Any) -> TypeGuard[LinearOperator]:
    """Whether ``operator`` is linear: its ``linear`` flag, else whether it has ``A_adjoint``."""
    flag = getattr(operator, "linear", None)
    if flag is not None:
        return bool(flag)
    return callable(getattr(operator, "A_adjoint", None))


def noise_sigma(operator: Any) -> float:
    """The standard deviation of the operator's Gaussian measurement noise (0 when none)."""
    sigma = getattr(getattr(operator, "noise_model", None), "sigma", 0.0)
    return float(sigma) if sigma is not None else 0.0


def measure(operator: Any, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``y = A(x) + sigma_y * n`` with ``n`` drawn from ``generator`` (reproducible noise)."""
    with torch.no_grad():
        y = operator.A(x)
        sigma = noise_sigma(operator)
        if sigma > 0:
            # Without a generator the noise comes from the global CPU generator on every device,
            # so ``torch.manual_seed`` alone makes it reproducible on a GPU too.
            y = y + sigma * randn_like(y, torch.default_generator if generator is None else generator)
    return y


def data_fidelity(operator: Any, x: Tensor, y: Tensor) -> Tensor:
    """Per-item ``1/2 ||A x - y||^2`` (shape (B,))."""
    r = operator.A(x) - y
    return 0.5 * r.flatten(1).pow(2).sum(1)


def residual(operator: Any, x: Tensor, y: Tensor) -> Tensor:
    """Per-item relative data residual ``||A x - y|| / ||y||`` (shape (B,))."""
    with torch.no_grad():
        r = (operator.A(x) - y).flatten(1).norm(dim=1)
        return r / y.flatten(1).norm(dim=1).clamp_min(1e-12)


def data_gradient(operator: Any, x: Tensor, y: Tensor) -> Tensor:
    """Gradient of ``1/2 ||A x - y||^2``: ``A^T (A x - y)`` if linear, else a vector-Jacobian product."""
    if is_linear(operator):
        with torch.no_grad():
            return operator.A_adjoint(operator.A(x) - y)
    if callable(getattr(operator, "A_vjp", None)):
        with torch.no_grad():
            r = operator.A(x) - y
        return operator.A_vjp(x, r).detach()
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(data_fidelity(operator, xg, y).sum(), xg)
    return g


def pseudo_inverse(operator: Any, y: Tensor) -> Tensor:
    """``A^+ y`` through the operator's ``A_dagger``."""
    dagger = getattr(operator, "A_dagger", None)
    if dagger is None:
        raise TypeError(f"{type(operator).__name__} has no A_dagger; a pseudo-inverse "
                        "initialisation needs one (give x_init instead)")
    with torch.no_grad():
        return dagger(y)


def project(operator: Any, x: Tensor, y: Tensor) -> Tensor:
    """Project ``x`` onto {x : A x = y}: the operator's ``project`` or ``x + A^+(y - A x)``."""
    proj = getattr(operator, "project", None)
    if callable(proj):
        return proj(x, y)
    if not is_linear(operator):
        raise TypeError(f"{type(operator).__name__} is nonlinear and defines no project(x, y); "
                        "give it one to use a projection-based solver")
    with torch.no_grad():
        return x + pseudo_inverse(operator, y - operator.A(x))


def prox_data(operator: Any, z: Tensor, y: Tensor, gamma: float, max_iter: int = 200,
              tol: float | None = None) -> Tensor:
    """``argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2``.

    Uses the operator's ``prox_l2`` when it has one (deepinv's closed forms and its conjugate
    gradient); otherwise conjugate gradient on ``(A^T A + I / gamma) x = A^T y + z / gamma``
    for linear operators (relative tolerance ``tol``, by default 1e-6 in float32 and 1e-12
    in float64), and ``max_iter`` gradient steps for nonlinear ones.
    """
    if tol is None:
        tol = 1e-12 if z.dtype == torch.float64 else 1e-6
    own = getattr(operator, "prox_l2", None)
    if callable(own):
        with torch.no_grad():
            return own(z, y, gamma)
    if is_linear(operator):
        return _conjugate_gradient(
            lambda v: operator.A_adjoint(operator.A(v)) + v / gamma,
            operator.A_adjoint(y) + z / gamma, z, max_iter, tol)
    x = z.clone()
    step = 1.0 / (1.0 + 1.0 / gamma)
    for _ in range(max_iter):
        x = x - step * (data_gradient(operator, x, y) + (x - z) / gamma)
    return x


@torch.no_grad()
def _conjugate_gradient(apply: Any, b: Tensor, x0: Tensor, max_iter: int, tol: float) -> Tensor:
    """Batched conjugate gradient for a symmetric positive-definite ``apply``."""
    def dot(u: Tensor, v: Tensor) -> Tensor:
        return (u * v).flatten(1).sum(1).view(-1, *([1] * (u.dim() - 1)))

    x = x0.clone()
    r = b - apply(x)
    p = r.clone()
    rs = dot(r, r)
    b_norm = dot(b, b).clamp_min(1e-30)
    for _ in range(max_iter):
        ap = apply(p)
        alpha = rs / dot(p, ap).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = dot(r, r)
        if bool((rs_new / b_norm).max() < tol**2):
            break
        p = r + (rs_new / rs.clamp_min(1e-30)) * p
        rs = rs_new
    return x


class GaussianNoise:
    """A minimal noise model with deepinv's ``sigma`` attribute (for operators without deepinv)."""

    def __init__(self, sigma: float = 0.0) -> None:
        self.sigma = float(sigma)


class MatrixOperator:
    """A dense linear operator ``y = M vec(x)`` on signals of shape ``(B, *shape)``.

    Small problems with known solutions (tests, examples) need no deepinv. It has the
    physics interface, an exact projection and an exact proximal step.

    :param torch.Tensor matrix: (m, n) matrix with ``n = prod(shape)``.
    :param tuple shape: signal shape without the batch axis, e.g. ``(1, 8)``.
    :param float sigma: measurement noise standard deviation.

    >>> import torch
    >>> op = MatrixOperator(torch.eye(3)[:2], shape=(1, 3))
    >>> op.A(torch.ones(1, 1, 3)).shape
    torch.Size([1, 2])
    """

    linear = True

    def __init__(self, matrix: Tensor, shape: tuple[int, ...], sigma: float = 0.0) -> None:
        self.matrix = matrix
        self.shape = tuple(shape)
        n = 1
        for s in self.shape:
            n *= s
        if matrix.shape[1] != n:
            raise ValueError(f"matrix has {matrix.shape[1]} columns but a signal of shape "
                             f"{self.shape} has {n} entries")
        self.pinv = torch.linalg.pinv(matrix)
        self.noise_model = GaussianNoise(sigma)

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        return x.flatten(1) @ self.matrix.T.to(x.dtype)

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        return (y @ self.matrix.to(y.dtype)).view(-1, *self.shape)

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        return (y @ self.pinv.T.to(y.dtype)).view(-1, *self.shape)

    def A_vjp(self, x: Tensor, v: Tensor, **kwargs: Any) -> Tensor:
        return self.A_adjoint(v)

    def __call__(self, x: Tensor, **kwargs: Any) -> Tensor:
        return measure(self, x)


def _shape(shape: Sequence[int], what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a sequence of ints such as (1, 64, 96), "
                         f"got {shape!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"{what} must be a non-empty sequence of positive ints such as "
                         f"(1, 64, 96), got {out}")
    return out


def infer_signal_shape(component: Component, measurement_shape: Sequence[int],
                       settings: Mapping[str, Any]) -> tuple[int, ...]:
    r"""The signal shape ``(C, *spatial)`` that the operator maps to a measurement of
    ``measurement_shape``.

    The rule is the component's ``signal_shape`` registration metadata: a callable, or a
    ``"module:attr"`` reference to one (imported here, so listing plugins stays cheap),
    ``f(measurement_shape, **settings) -> shape``. It receives only the ``settings`` its
    signature names (:func:`pnpkit.plugins.accepted`), so ``sigma_y`` and the like need not
    be declared. Without a rule the operator is taken to keep the shape (denoising, masks,
    same-size blurs). A rule raises :class:`ValueError` naming both shapes when no signal
    can give that measurement.

    :param pnpkit.plugins.Component component: the registered operator.
    :param tuple[int] measurement_shape: one measurement without the batch axis, ``(C', *spatial')``.
    :param dict settings: the user's operator settings (the ``[operator]`` table but ``name``).
    :return: (tuple[int]) the signal shape, without the batch axis.

    |sep|

    :Examples:

        >>> from pnpkit.plugins import Component
        >>> def halve(measurement_shape, factor=2):
        ...     c, n = measurement_shape
        ...     return (c, n * factor)
        >>> op = Component("decimate", "operator", dict, "mine", {"signal_shape": halve})
        >>> infer_signal_shape(op, (1, 4000), {"factor": 2, "sigma_y": 0.0})
        (1, 8000)
        >>> infer_signal_shape(Component("denoise", "operator", dict, "mine"), (3, 64, 96), {})
        (3, 64, 96)
    """
    shape = _shape(measurement_shape, "measurement_shape")
    rule: Callable[..., Any] | str | None = component.metadata.get("signal_shape")
    if rule is None:
        return shape
    fn = resolve(rule) if isinstance(rule, str) else rule
    out = fn(shape, **accepted(fn, dict(settings)))
    return _shape(out, f"operator {component.qualified!r}: its signal_shape rule's result")


def _like(op: Any) -> dict[str, Any]:
    """The dtype and device of the operator's first floating buffer (float32 on the CPU without one)."""
    buffers = getattr(op, "buffers", None)
    if callable(buffers):
        for buf in buffers():
            if buf is not None and buf.is_floating_point():
                return {"dtype": buf.dtype, "device": buf.device}
    return {"dtype": torch.float32, "device": torch.device("cpu")}


def check_measurement(op: Any, signal_shape: Sequence[int], measurement_shape: Sequence[int]) -> None:
    r"""Raise :class:`ValueError` naming both shapes unless ``op`` maps a signal of
    ``signal_shape`` to a measurement of ``measurement_shape``.

    Applies ``op.A`` to zeros of shape ``(1, *signal_shape)`` (in the dtype and on the
    device of the operator's buffers) and compares the output without its batch axis.

    :param op: the built operator.
    :param tuple[int] signal_shape: ``(C, *spatial)``.
    :param tuple[int] measurement_shape: the measurement without the batch axis.

    |sep|

    :Examples:

        >>> op = MatrixOperator(torch.eye(6)[:3], shape=(1, 6))
        >>> check_measurement(op, (1, 6), (3,))
        >>> check_measurement(op, (1, 6), (1, 3))
        Traceback (most recent call last):
        ...
        ValueError: MatrixOperator maps a signal of shape (1, 6) to a measurement of shape (3,), ...
    """
    signal = _shape(signal_shape, "signal_shape")
    expected = _shape(measurement_shape, "measurement_shape")
    name = type(op).__name__
    try:
        with torch.no_grad():
            out = op.A(torch.zeros((1, *signal), **_like(op)))
    except (ValueError, RuntimeError, IndexError) as exc:
        raise ValueError(f"{name} cannot measure a signal of shape {signal} (for a measurement "
                         f"of shape {expected}): {exc}") from exc
    got = tuple(out.shape[1:])
    if got != expected:
        raise ValueError(f"{name} maps a signal of shape {signal} to a measurement of shape "
                         f"{got}, not {expected}; give a measurement of shape {got} or the "
                         f"operator settings that produce {expected}")


def measurement_rate(op: Any, signal_rate: int | None) -> int | None:
    r"""The sample rate of ``op``'s measurement for a signal sampled at ``signal_rate``.

    The operator's optional ``measurement_rate(rate)`` method (an operator that decimates
    or resamples has one), else ``signal_rate`` itself. ``None`` (no sample rate: images)
    stays ``None``.

    :param op: the operator.
    :param int signal_rate: the signal's sample rate in Hz, or ``None``.
    :return: (int) the measurement's sample rate in Hz, or ``None``.

    |sep|

    :Examples:

        >>> class Halve:
        ...     def measurement_rate(self, rate):
        ...         return rate // 2
        >>> measurement_rate(Halve(), 8000), measurement_rate(object(), 8000)
        (4000, 8000)
    """
    if signal_rate is None:
        return None
    own = getattr(op, "measurement_rate", None)
    if not callable(own):
        return int(signal_rate)
    rate = own(int(signal_rate))
    if rate is None or int(rate) != rate or int(rate) < 1:
        raise ValueError(f"{type(op).__name__}.measurement_rate({signal_rate}) returned "
                         f"{rate!r}; it must return a positive integer sample rate in Hz")
    return int(rate)
