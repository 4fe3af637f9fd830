"""Latent diffusion: an operator seen through a decoder, acting on latents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepinv.physics import Physics
from torch import Tensor

from pnpkit.operators import project

from ._common import autograd_vjp


class LatentOperator(Physics):
    r"""
    An operator composed with a decoder :math:`D`, for priors that live in a latent space.

    .. math::

        A_{\mathrm{latent}}(z) = A(D(z))

    It is nonlinear (``linear = False``) whatever :math:`A` is; its vector-Jacobian product
    :math:`J_D(z)^{\top} J_A(D z)^{\top} v` is computed by autograd through the decoder. The
    noise model is that of the inner operator (the measurements are the same).

    Without an encoder there is no pseudo-inverse and no projection. With an encoder
    :math:`E`, :meth:`A_dagger` is :math:`E(A^{\dagger} y)` and :meth:`project` is
    :math:`E(P(D(z)))` with the inner operator's projection :math:`P`; neither is exact,
    since :math:`D(E(x)) \neq x` in general.

    :param operator: the pixel-space operator (any pnpkit operator / deepinv physics).
    :param Callable decoder: latents ``(B, c, *s)`` to signals ``(B, C, *S)``.
    :param Callable encoder: optional, signals to latents.

    |sep|

    :Examples:

        >>> import torch
        >>> from pnpkit.operators import MatrixOperator
        >>> inner = MatrixOperator(torch.eye(4)[:2], shape=(1, 4))
        >>> op = LatentOperator(inner, decoder=lambda z: z.repeat(1, 1, 2))
        >>> op.A(torch.ones(1, 1, 2)).shape
        torch.Size([1, 2])
    """

    linear = False

    def __init__(self, operator: Any, decoder: Callable[[Tensor], Tensor],
                 encoder: Callable[[Tensor], Tensor] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("noise_model", getattr(operator, "noise_model", None))
        super().__init__(**kwargs)
        self.operator = operator
        self.decoder = decoder
        self.encoder = encoder

    def decode(self, z: Tensor) -> Tensor:
        """The signal :math:`D(z)` of latents ``z``."""
        return self.decoder(z)

    def encode(self, x: Tensor) -> Tensor:
        """Latents :math:`E(x)` of a signal (needs an encoder)."""
        if self.encoder is None:
            raise TypeError("this LatentOperator has no encoder; pass encoder=... to "
                            "LatentOperator to encode signals")
        return self.encoder(x)

    def A(self, z: Tensor, **kwargs: Any) -> Tensor:
        r"""
        :math:`A(D(z))`.

        :param torch.Tensor z: latents.
        """
        return self.operator.A(self.decoder(z))

    def A_vjp(self, z: Tensor, v: Tensor, **kwargs: Any) -> Tensor:
        r"""
        :math:`\left(\frac{\partial A(D(z))}{\partial z}\right)^{\top} v` by autograd.

        :param torch.Tensor z: latents.
        :param torch.Tensor v: vector shaped as the measurements.
        """
        return autograd_vjp(self.A, z, v)

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        Latents :math:`E(A^{\dagger} y)` of the inner pseudo-inverse (needs an encoder).

        :param torch.Tensor y: measurements.
        """
        if self.encoder is None:
            raise TypeError("LatentOperator has no pseudo-inverse without an encoder: pass "
                            "encoder=... or give the solver x_init")
        return self.encoder(self.operator.A_dagger(y))

    def project(self, z: Tensor, y: Tensor) -> Tensor:
        r"""
        Latents of the projected decoded signal, :math:`E(P(D(z), y))` (needs an encoder).

        :param torch.Tensor z: latents.
        :param torch.Tensor y: measurements.
        """
        if self.encoder is None:
            raise TypeError("LatentOperator cannot project without an encoder: pass "
                            "encoder=... (or use a gradient-based data step)")
        return self.encoder(project(self.operator, self.decoder(z), y))
