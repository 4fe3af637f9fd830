"""Generated dead-leaves images: synthetic training data for the project's image priors.

A dead-leaves image is a stack of opaque disks that fall one on top of another until they
cover the whole picture; what is seen is, at each pixel, the colour of the topmost disk. With
uniformly placed centres and radii drawn from a power law :math:`p(r) \\propto r^{-3}` between
``rmin`` and ``rmax``, the model is (between those two scales) scale invariant, and Lee, Mumford
& Huang (2001, "Occlusion models for natural images: a statistical study of a scale-invariant
dead leaves model", IJCV 41) showed that it reproduces the second-order and derivative
statistics measured on natural photographs (power spectrum close to :math:`1/f^2`, heavy-tailed
gradient histograms) through occlusion alone. Achddou, Gousseau & Ladjal (2021, "Synthetic
images as a regularity prior for image restoration neural networks", SSVM) trained denoisers
on dead-leaves images only and found them close to the same networks trained on natural
images, and better when mixed with them; this module makes such images so they can be mixed
into the patch stream of :class:`pnpkit_priors.datasets.PatchSampler`.

The images are drawn front to back (the first disk drawn is on top: Kendall & Thönnes's
1999 perfect simulation of the model, "Perfect simulation in stochastic geometry", Pattern
Recognition 32): each disk only paints the pixels that no earlier disk
covered, and drawing stops when every pixel is covered (or after ``max_disks``; any pixel still
uncovered then takes the last disk's colour). Colours are uniform: grey levels in [0, 1], or
uniform RGB triples. Edges are anti-aliased by drawing at ``supersample`` times the size and
averaging blocks, so disks do not have the staircase edges no camera produces. Everything is a
pure function of the numpy generator passed in.
"""

from __future__ import annotations

import numpy as np

#: The exponent of the radius law :math:`p(r) \propto r^{-\alpha}` (Lee, Mumford & Huang 2001).
ALPHA = 3.0


def radii(n: int, rmin: float, rmax: float, rng: np.random.Generator,
          alpha: float = ALPHA) -> np.ndarray:
    r"""``n`` radii of density :math:`\propto r^{-\alpha}` on ``[rmin, rmax]`` (inverse CDF).

    For :math:`\alpha \ne 1`, :math:`r = \big(r_{\min}^{1-\alpha} - u\,(r_{\min}^{1-\alpha} -
    r_{\max}^{1-\alpha})\big)^{1/(1-\alpha)}` with :math:`u` uniform on [0, 1).

    :param int n: how many.
    :param float rmin: the smallest radius (pixels), > 0.
    :param float rmax: the largest radius (pixels), >= ``rmin``.
    :param numpy.random.Generator rng: the generator.
    :param float alpha: the exponent (3: the scale-invariant model).
    :return: float64 (n,) radii.
    """
    if not 0 < rmin <= rmax:
        raise ValueError(f"dead leaves need 0 < rmin <= rmax, got rmin={rmin}, rmax={rmax}")
    u = rng.random(n)
    if alpha == 1.0:
        return rmin * (rmax / rmin) ** u
    a, b = rmin ** (1.0 - alpha), rmax ** (1.0 - alpha)
    return (a - u * (a - b)) ** (1.0 / (1.0 - alpha))


def dead_leaves(size: int, channels: int, rng: np.random.Generator, rmin: float = 1.0,
                rmax: float | None = None, supersample: int = 2,
                max_disks: int = 20000) -> np.ndarray:
    """One dead-leaves image, float32 (size, size, channels) in [0, 1].

    :param int size: the side of the square image (pixels).
    :param int channels: 1 (uniform grey levels) or 3 (uniform RGB colours).
    :param numpy.random.Generator rng: the generator (the image is a pure function of it).
    :param float rmin: the smallest disk radius, in output pixels.
    :param float rmax: the largest radius, in output pixels (default: ``size``).
    :param int supersample: draw at this many times the size and average blocks (1: no
        anti-aliasing).
    :param int max_disks: stop after this many disks even if a few pixels are still uncovered.
    """
    if channels not in (1, 3):
        raise ValueError(f"dead leaves have 1 (grey) or 3 (colour) channels, got {channels}")
    if size < 1 or supersample < 1:
        raise ValueError(f"dead leaves need size >= 1 and supersample >= 1, got size={size}, "
                         f"supersample={supersample}")
    s = int(supersample)
    side = size * s
    rmax = float(size if rmax is None else rmax)
    image = np.empty((side, side, channels), dtype=np.float32)
    covered = np.zeros((side, side), dtype=bool)
    left = side * side
    batch = 256
    drawn = 0
    colour = np.zeros(channels, dtype=np.float32)
    while left > 0 and drawn < max_disks:
        # Draw the disks' parameters in fixed-size batches (a pure function of rng, whatever
        # the stopping point inside a batch).
        r = radii(batch, rmin * s, rmax * s, rng)
        centres = rng.random((batch, 2)) * side
        colours = rng.random((batch, channels)).astype(np.float32)
        for k in range(batch):
            if left == 0 or drawn >= max_disks:
                break
            drawn += 1
            cy, cx, rad = centres[k, 0], centres[k, 1], r[k]
            y0, y1 = max(0, int(cy - rad)), min(side, int(cy + rad) + 2)
            x0, x1 = max(0, int(cx - rad)), min(side, int(cx + rad) + 2)
            if y0 >= y1 or x0 >= x1:
                continue
            yy = (np.arange(y0, y1) + 0.5 - cy)[:, None]
            xx = (np.arange(x0, x1) + 0.5 - cx)[None, :]
            paint = (yy * yy + xx * xx <= rad * rad) & ~covered[y0:y1, x0:x1]
            n = int(paint.sum())
            if n == 0:
                continue
            colour = colours[k]
            image[y0:y1, x0:x1][paint] = colour
            covered[y0:y1, x0:x1] |= paint
            left -= n
    if left:
        image[~covered] = colour
    if s > 1:
        image = image.reshape(size, s, size, s, channels).mean(axis=(1, 3))
    return image.astype(np.float32)
