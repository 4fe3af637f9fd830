"""TOML pipeline configurations: parsing, validation and the fully resolved form.

A configuration names the data, the operator, the prior, the solver, the metrics, the seed
and the output folder. Simulated: a clean reference is measured through the operator::

    seed = 0
    output = "runs/demo"
    metrics = ["psnr", "ssim"]

    [data]
    sample = "camera"        # or files = ["img/*.png"], or dataset = "<registered name>"
    size = 32                # centre-crop and resize (sample / files / dataset only)
    channels = 1

    [operator]
    name = "box-inpainting"
    sigma_y = 0.0            # measurement noise added (any other key is an operator setting)

    [prior]
    name = "default-grey32"

    [solver]
    name = "hqs"
    iterations = 30

Measured: the user's own ``y``, restored at its own size (nothing is cropped or squashed)::

    [data]
    measurement = "blurry.png"   # PNG/JPEG/TIFF or WAV/FLAC; a glob or a list: one item per file
    reference = "sharp.png"      # optional: same glob order, or matched by file stem
    channels = 1                 # images: 1 = grey, 3 = colour (default: as the file)

    [operator]
    name = "blur"
    kernel = "psf.png"           # paths are relative to this file's folder
    sigma_y = 0.01               # the noise level the measurement HAS: none is added

    [prior]
    name = "default-grey32"
    tile = 64                    # optional: run the network on overlapping 64-pixel tiles
    overlap = 16                 # (default tile // 4)

``[data]`` keys: exactly one of ``sample``, ``files``, ``dataset``, ``measurement``;
``reference`` (with ``measurement`` only); ``size`` (not with ``measurement``); ``channels``;
``limit`` (the first N items); ``sample_rate`` (audio: the rate to load ``files`` at; for a
measured mixture, the prior's rate when the prior does not say it); ``seconds`` (audio
``files``: keep the first N seconds); ``overlap`` (measured audio longer than the prior's
window: the cross-fade between windows in seconds, default 1.0). A registered dataset takes
its own settings in ``[data]`` too. Operator settings named ``kernel`` or ``mask`` that are
relative paths are read relative to the configuration file's folder, like the data paths.

Unknown keys are errors that name the closest valid key. Configuration files are data:
nothing in them is executed.
"""

from __future__ import annotations

import copy
import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plugins import get_manager, suggest

TOP_KEYS = {"seed", "output", "device", "dtype", "metrics", "data", "operator", "prior", "solver"}
SECTIONS = ("data", "operator", "prior", "solver")
DATA_KEYS = {"sample", "files", "dataset", "measurement", "reference", "size", "channels", "limit",
             "sample_rate", "seconds", "overlap"}
#: The keys that name where the items come from: exactly one per configuration.
SOURCES = ("sample", "files", "dataset", "measurement")
DEFAULTS: dict[str, Any] = {"seed": 0, "device": "cpu", "dtype": "float32", "metrics": ["psnr"]}


class ConfigError(ValueError):
    """A configuration is invalid; the message names the key and the fix."""


def unknown_key(key: str, valid: set[str] | list[str], where: str) -> ConfigError:
    """The error for an unknown ``key`` in ``where``, naming the closest valid key and all of them.

    >>> print(unknown_key("sede", {"seed", "output"}, "the configuration"))
    unknown key 'sede' in the configuration. Did you mean 'seed'? Valid keys: output, seed.
    """
    return ConfigError(f"unknown key {key!r} in {where}.{suggest(key, valid)} "
                       f"Valid keys: {', '.join(sorted(valid))}.")


@dataclass
class PipelineConfig:
    """A validated configuration (``raw``) and the folder its relative paths are relative to."""

    raw: dict[str, Any]
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def seed(self) -> int:
        return int(self.raw["seed"])

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.raw.get(name, {}))


def set_value(raw: dict[str, Any], dotted: str, text: str) -> None:
    """Apply a ``--set section.key=value`` override; the value is read as TOML (else a string)."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    *path, last = dotted.split(".")
    node = raw
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
    node[last] = value


def load(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Read and validate a TOML configuration; ``overrides`` are ``key.path=value`` strings."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        set_value(raw, key.strip(), value.strip())
    return validate(raw, path.parent.resolve())


def validate(raw: dict[str, Any], base_dir: Path | None = None) -> PipelineConfig:
    """Check keys and required fields; fill the top-level defaults."""
    raw = copy.deepcopy(raw)
    for key in raw:
        if key not in TOP_KEYS:
            raise unknown_key(key, TOP_KEYS, "the configuration")
    for key, value in DEFAULTS.items():
        raw.setdefault(key, copy.deepcopy(value))
    if "output" not in raw:
        raise ConfigError("the configuration needs an output folder: output = \"runs/NAME\"")
    for name in SECTIONS:
        if not isinstance(raw.get(name), dict):
            raise ConfigError(f"the configuration needs a [{name}] table")
    for name in ("operator", "prior", "solver"):
        if "name" not in raw[name]:
            kind = name
            known = ", ".join(sorted(get_manager().components[kind])) or "(none installed)"
            raise ConfigError(f"[{name}] needs a name; installed {kind}s: {known}")
    data = raw["data"]
    sources = [k for k in SOURCES if k in data]
    if len(sources) != 1:
        raise ConfigError("[data] needs exactly one of sample = \"camera\", files = [...], "
                          f"dataset = \"name\", measurement = \"y.png\"; got {sources or 'none'}")
    if "reference" in data and "measurement" not in data:
        raise ConfigError("[data] reference goes with measurement = \"y.png\" (the measured y); "
                          "with sample / files / dataset the items are the references already")
    if "measurement" in data:
        for key in ("size", "seconds"):
            if key in data:
                raise ConfigError(f"[data] {key} does not apply to a measurement: it is restored "
                                  f"at its own size; remove {key}")
        for key in ("measurement", "reference"):
            value = data.get(key)
            if value is not None and not (isinstance(value, str) or (
                    isinstance(value, list) and value and all(isinstance(v, str) for v in value))):
                raise ConfigError(f"[data] {key} must be a path, a glob or a list of them, e.g. "
                                  f"{key} = \"photos/*.png\"; got {value!r}")
        overlap = data.get("overlap", 1.0)
        if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or overlap < 0:
            raise ConfigError(f"[data] overlap is the cross-fade in seconds, a number >= 0 (e.g. "
                              f"overlap = 1.0); got {overlap!r}")
    elif "overlap" in data and "dataset" not in data:
        raise ConfigError("[data] overlap (the cross-fade between audio windows) goes with "
                          "measurement = \"song.wav\"; remove it")
    prior = raw["prior"]
    for key in ("tile", "overlap"):
        value = prior.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < (
                1 if key == "tile" else 0)):
            raise ConfigError(f"[prior] {key} must be a whole number of pixels (e.g. tile = 64, "
                              f"overlap = 16); got {value!r}")
    if "overlap" in prior and "tile" not in prior:
        raise ConfigError("[prior] overlap goes with tile = N (the tile size in pixels); add tile")
    if "dataset" not in data:
        for key in data:
            if key not in DATA_KEYS:
                raise unknown_key(key, DATA_KEYS, "[data]")
    if not isinstance(raw["metrics"], list):
        raise ConfigError("metrics must be a list, e.g. metrics = [\"psnr\", \"ssim\"]")
    if raw["dtype"] not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {raw['dtype']!r}")
    return PipelineConfig(raw, base_dir or Path.cwd())


def factory_defaults(factory: Any) -> dict[str, Any]:
    """The defaulted keyword parameters of a component factory (for the resolved config)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    out = {}
    for p in params:
        if p.default is not inspect.Parameter.empty and p.name not in ("shape", "device", "dtype"):
            v = p.default
            if isinstance(v, (bool, int, float, str)) or (isinstance(v, (list, tuple)) and all(
                    isinstance(e, (bool, int, float, str)) for e in v)):
                out[p.name] = list(v) if isinstance(v, tuple) else v
    return out
