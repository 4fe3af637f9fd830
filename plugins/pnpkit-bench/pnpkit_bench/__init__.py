"""pnpkit-bench: ``pnpkit bench`` sweeps, their reports, and the figures of ``pnpkit run``.

- :mod:`pnpkit_bench.sweep`: the sweep file, its cases and :class:`~pnpkit_bench.sweep.Sweep`;
- :mod:`pnpkit_bench.memory`: :class:`~pnpkit_bench.memory.PeakMemory`, as the sweep measures it;
- :mod:`pnpkit_bench.report`: ``summary.md``, the plots, the image grids and ``report.html``;
- :mod:`pnpkit_bench.figures`: the per-item ``figure.png`` of ``pnpkit run``;
- :mod:`pnpkit_bench.plugin`: the ``bench`` command and the ``render_item`` hook.

Importing the package imports nothing heavy: ``pnpkit plugins`` loads its plugin module.
"""

from __future__ import annotations

__version__ = "0.1.0"
