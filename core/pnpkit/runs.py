"""The run layer's output folders, shared by ``pnpkit run`` and every command that writes runs.

A run writes into an :class:`OutputFolder`: the folder a configuration names (relative to the
configuration file) or the one given with ``-o DIR`` (relative to the working directory). A
*stamp* file in it (``manifest.json`` for ``pnpkit run``, ``sweep.json`` for ``pnpkit bench``)
records the :func:`fingerprint` of the configuration whose results the folder holds; starting
the same configuration again resumes it, a different one is refused unless ``--overwrite`` is
given. Every JSON file is written with :func:`write_json`, atomically, so a run killed at any
moment leaves the previous version of a file or the next, never half of one. Under
``torchrun``, :class:`Distributed` is the process group that shards the work.

>>> import tempfile
>>> folder = OutputFolder.resolve(None, "out", Path(tempfile.mkdtemp()))
>>> print(folder.claim(fingerprint({"solver": "hqs"}), overwrite=False))
None
>>> write_json(folder.stamp, {"fingerprint": fingerprint({"solver": "hqs"})})
>>> folder.claim(fingerprint({"solver": "pgd"}), overwrite=False)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pnpkit.config.ConfigError: ... holds a run of a different configuration; pass --overwrite ...
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import ConfigError

__all__ = ["Distributed", "OutputFolder", "fingerprint", "write_json"]


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (a temporary file, then a rename).

    :param pathlib.Path path: the file to (over)write.
    :param obj: anything :func:`json.dumps` accepts.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False))
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written file


def fingerprint(config: dict[str, Any], exclude: Iterable[str] = ("output",)) -> str:
    """16 hex digits identifying a configuration, whatever its key order.

    :param dict config: a JSON-serialisable configuration.
    :param exclude: top-level keys that do not change the results (where they are written).
    :return: the first 16 hex digits of the SHA-256 of the sorted JSON.

    >>> fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1, "output": "x"})
    True
    """
    skip = set(exclude)
    clean = {k: v for k, v in config.items() if k not in skip}
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]


class OutputFolder:
    """A run's output folder and the stamp that says which configuration it holds.

    :param pathlib.Path path: the folder (created by :meth:`claim`).
    :param str stamp: the name of the JSON file, inside the folder, that records the
        configuration's ``"fingerprint"``.
    """

    def __init__(self, path: Path, stamp: str = "manifest.json") -> None:
        self.path = Path(path)
        self.stamp = self.path / stamp

    @classmethod
    def resolve(cls, output: str | Path | None, configured: str | Path, base_dir: Path,
                stamp: str = "manifest.json") -> OutputFolder:
        """The folder ``-o`` names (as given), else the configured one (relative to ``base_dir``).

        :param output: the command line's ``-o DIR``, or None.
        :param configured: the configuration's ``output``.
        :param pathlib.Path base_dir: the folder of the configuration file.
        :param str stamp: see :class:`OutputFolder`.
        """
        path = Path(output or configured)
        if not path.is_absolute() and output is None:
            path = Path(base_dir) / path
        return cls(path, stamp)

    def claim(self, fingerprint: str, overwrite: bool) -> dict[str, Any] | None:
        """Create the folder and decide between a fresh start, a resume and a refusal.

        :param str fingerprint: the :func:`fingerprint` of the configuration about to run.
        :param bool overwrite: replace whatever the folder holds.
        :return: the stamp's content when the folder holds this configuration (resume), None
            when it holds none or ``overwrite`` is set (start afresh).
        :raises pnpkit.config.ConfigError: the folder holds a different configuration.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if overwrite or not self.stamp.exists():
            return None
        old = json.loads(self.stamp.read_text())
        if old.get("fingerprint") != fingerprint:
            raise ConfigError(f"{self.path} holds a run of a different configuration; pass "
                              "--overwrite to replace it, or choose another output folder (-o DIR)")
        return old

    def remove(self, *patterns: str) -> None:
        """Delete the files in the folder that match any of the glob ``patterns``."""
        for pattern in patterns:
            for path in self.path.glob(pattern):
                path.unlink()

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.path)!r}, stamp={self.stamp.name!r})"


class Distributed:
    """The torch.distributed group of a ``torchrun`` launch (a single process otherwise).

    Reads ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` and, for more than one process, joins
    the group (NCCL with CUDA, Gloo otherwise) unless the caller already has.
    """

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owned = False
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
            self.owned = True

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.world > 1:
            self.dist.barrier()

    def close(self) -> None:
        """Leave the group if this object joined it."""
        if self.owned:
            self.dist.destroy_process_group()
