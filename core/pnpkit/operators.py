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
- ``linear``: a bool that overrides the "has ``A_adjoint``" test of linearity.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeGuard, runtime_checkable

import torch
from torch import Tensor

from .priors import randn_like


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
