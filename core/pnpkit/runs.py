"""The run layer's output folders, shared by ``pnpkit run`` and every command that writes runs.

A run writes into an :class:`OutputFolder`: the folder a configuration names (relative to the
configuration file) or the one given with ``-o DIR`` (relative to the working directory). A
*stamp* file in it (``manifest.json`` for ``pnpkit run``, ``sweep.json`` for ``pnpkit bench``)
records the :func:`fingerprint` of the configuration whose results the folder holds; starting
the same configuration again resumes it, a different one is refused unless ``--overwrite`` is
given; a stamp that lists no finished result is replaced without it (nothing is lost).

One run writes into a folder at a time: :meth:`OutputFolder.claim` takes an OS lock on it
(:class:`FolderLock`, a ``flock`` on ``.pnpkit.lock``, which the operating system drops when
the process ends however it ends, ``kill -9`` included), and a second run on a busy folder is
refused with one line naming the holder. The stamp records the :func:`environment` that
changes numbers (pnpkit and torch versions, torch's thread count, the device); resuming
finished results under another environment is refused, naming what differs.

Every file is written with :func:`write_json` / :func:`write_text`, atomically (a temporary
file unique to the process, then a rename), so a run killed at any moment leaves the previous
version of a file or the next, never half of one, and concurrent writers never share a
temporary file. Under ``torchrun``, :class:`Distributed` is the process group that shards the
work. :func:`check_device` turns a configured device into a ``torch.device`` or one line
naming the devices this machine has.

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

import datetime
import hashlib
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["Distributed", "FolderBusy", "FolderLock", "OutputFolder", "available_devices",
           "check_device", "environment", "fingerprint", "write_json", "write_text"]


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file of this process, then a rename.

    The temporary file's name holds the process id and a random part, so processes (and
    threads) writing the same file at once never share it; the last rename wins whole.

    :param pathlib.Path path: the file to (over)write.
    :param str text: its new content.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: a kill never leaves a half-written file
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`write_text`).

    :param pathlib.Path path: the file to (over)write.
    :param obj: anything :func:`json.dumps` accepts.
    """
    write_text(path, json.dumps(obj, indent=2, sort_keys=False))


def read_json(path: Path, fix: str) -> Any:
    """The JSON in ``path``; a corrupt file is one :class:`ConfigError` naming it and ``fix``."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is corrupt (not the JSON pnpkit writes: {exc}); {fix}") from None


def available_devices() -> list[str]:
    """The devices this machine has, as configurations name them: ``cpu``, ``cuda:N``, ``mps``."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(name: Any, key: str = "device") -> torch.device:
    """The ``torch.device`` a configuration's ``device`` names, if this machine has it.

    :param name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    :param str key: the setting's name in messages.
    :raises pnpkit.config.ConfigError: one line naming the devices this machine has.

    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pnpkit.config.ConfigError: device = 'gpu0' is not a device name; this machine has: cpu...
    """
    import torch

    have = ", ".join(available_devices())
    try:
        if not isinstance(name, str):
            raise TypeError(name)
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{key} = {name!r} is not a device name; this machine has: {have} "
                          f"(e.g. {key} = \"cpu\")") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count())
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        ok = mps is not None and mps.is_available() and dev.index in (None, 0)
    else:
        ok = False
    if not ok:
        raise ConfigError(f"{key} = {name!r}: this machine has no such device; it has: {have} "
                          f"(e.g. {key} = \"cpu\")")
    return dev


def environment(device: Any = "cpu") -> dict[str, Any]:
    """What changes a run's numbers besides its configuration, as the stamp records it.

    :param device: the run's device (a ``torch.device`` or its name).
    :return: ``pnpkit`` and ``torch`` versions, torch's intra-op ``threads`` and the
        ``device`` (a GPU's model too).

    >>> sorted(environment())
    ['device', 'pnpkit', 'threads', 'torch']
    """
    import torch

    from . import __version__

    dev = torch.device(device)
    name = dev.type
    if dev.type == "cuda" and torch.cuda.is_available():
        name = f"cuda ({torch.cuda.get_device_name(dev)})"
    return {"pnpkit": __version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": name}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k} {old[k]} here, {new.get(k)} now" for k in sorted(old) if old[k] != new.get(k)]


class FolderBusy(ConfigError):
    """Another process holds the output folder's lock."""


class FolderLock:
    """An exclusive OS lock on ``<folder>/.pnpkit.lock``, which says who holds it.

    ``fcntl.flock`` (``msvcrt.locking`` on Windows) on an open file: the operating system
    releases it when the process ends, however it ends, so a killed run never leaves its
    folder locked. Two locks on one folder conflict even inside one process.

    :param pathlib.Path folder: the folder (it must exist).
    """

    NAME = ".pnpkit.lock"

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / self.NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`FolderBusy` naming the process that holds it."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            holder = self.holder() or "another process"
            raise FolderBusy(f"{self.path.parent} is in use by another run ({holder}); wait for it "
                             "to finish, or choose another output folder (-o DIR)") from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        info = (f"pid {os.getpid()} on {socket.gethostname()} since {started}: "
                f"{' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))}")
        os.ftruncate(fd, 0)
        os.write(fd, info.encode())
        self._fd = fd

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it (empty when unknown)."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


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
        self.lock = FolderLock(self.path)

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

    def claim(self, fingerprint: str, overwrite: bool, environment: dict[str, Any] | None = None,
              finished: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
        """Create and lock the folder, and decide between a fresh start, a resume and a refusal.

        The lock (:class:`FolderLock`) is held until :meth:`release` or the end of the process.

        :param str fingerprint: the :func:`fingerprint` of the configuration about to run.
        :param bool overwrite: replace whatever the folder holds.
        :param dict environment: this run's :func:`environment`; finished results recorded
            under another one are not resumed.
        :param finished: ``stamp -> bool``, whether a stamp lists any finished result (None:
            assume it does); a stamp without any is replaced as if absent.
        :return: the stamp's content when the folder holds this configuration (resume), None
            when it holds none or ``overwrite`` is set (start afresh).
        :raises pnpkit.config.ConfigError: the folder is a file, cannot be written, is in use
            by another run (:class:`FolderBusy`), holds a different configuration, a corrupt
            stamp, or results of another environment.
        """
        self.create()
        self.lock.acquire()
        try:
            return self._decide(fingerprint, overwrite, environment, finished)
        except BaseException:
            self.lock.release()  # refused: the folder is free for the corrected run
            raise

    def _decide(self, fingerprint: str, overwrite: bool, environment: dict[str, Any] | None,
                finished: Callable[[dict[str, Any]], bool] | None) -> dict[str, Any] | None:
        if overwrite or not self.stamp.exists():
            return None
        old = read_json(self.stamp, "pass --overwrite to start the run afresh, or remove the file")
        if not isinstance(old, dict):
            raise ConfigError(f"{self.stamp} is corrupt (not the JSON object pnpkit writes); pass "
                              "--overwrite to start the run afresh, or remove the file")
        if finished is not None and not finished(old):
            return None  # nothing finished: nothing to lose, a fresh start
        if old.get("fingerprint") != fingerprint:
            raise ConfigError(f"{self.path} holds a run of a different configuration; pass "
                              "--overwrite to replace it, or choose another output folder (-o DIR)")
        recorded = old.get("environment")
        if environment is not None and isinstance(recorded, dict):
            # Versions and the device change results; the thread count only their last digits
            # (the order of float reductions), so a resume under another one is said, not refused.
            fatal = _differences({k: v for k, v in recorded.items() if k != "threads"}, environment)
            if fatal:
                raise ConfigError(
                    f"{self.path} holds results computed under another environment "
                    f"({'; '.join(fatal)}), which would not match new ones; resume under the same "
                    "one, pass --overwrite to recompute everything, or choose another output "
                    "folder (-o DIR)")
            if "threads" in recorded and recorded["threads"] != environment.get("threads"):
                print(f"pnpkit: resuming {self.path} with {environment.get('threads')} threads; its "
                      f"finished items used {recorded['threads']} (results may differ in the last "
                      "digits; OMP_NUM_THREADS sets the count)", file=sys.stderr)
        return old

    def create(self) -> None:
        """Create the folder (and its parents); one line when it cannot be a writable folder."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"output {self.path} is a file, not a folder (or lies under one); "
                              "choose another output folder (-o DIR)") from None
        except PermissionError:
            raise ConfigError(f"cannot create the output folder {self.path}: permission denied; "
                              "choose a folder you can write to (-o DIR)") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot write to the output folder {self.path} (permission "
                              "denied); choose a folder you can write to (-o DIR)")

    def release(self) -> None:
        """Release the folder's lock (the process's end releases it too)."""
        self.lock.release()

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
