"""Peak memory of a block of code, as ``pnpkit bench`` reports it.

CPU: the process's resident set above its level at the start, sampled every 2 ms, with glibc
set to return large blocks to the system so the figure follows live tensors. GPU: torch's
peak allocated memory above the allocation at the start.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import torch

__all__ = ["PeakMemory"]

_LIBC: Any = None


def _libc() -> Any:
    """glibc, configured so that the resident set follows live memory (None elsewhere).

    By default glibc keeps freed blocks in its heap and raises its mmap threshold as large
    blocks are freed, so a second solve in the same process would show no growth at all. A
    fixed 64 KiB threshold returns every large tensor to the system when freed, and
    ``malloc_trim`` empties the heap before each measurement.
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            lib.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


class PeakMemory:
    """Peak memory of a ``with`` block: GPU peak allocated, or resident-set growth on CPU.

    :param torch.device device: where the block allocates; ``peak_mb`` holds the result
        (MiB) after the block.

    >>> import torch
    >>> with PeakMemory(torch.device("cpu")) as mem:
    ...     block = torch.ones(16, 2**18)  # 16 MiB
    ...     del block
    >>> mem.peak_mb >= 0
    True
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        lib = _libc()
        if lib is not None:
            lib.malloc_trim(0)
        self._base = self._peak = self._rss_mb()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, self._rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self._base
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self._peak, self._rss_mb()) - self._base
