"""TOML pipeline configurations: parsing, validation and the fully resolved form.

A configuration names the data, the operator, the prior, the solver, the metrics, the seed
and the output folder::

    seed = 0
    output = "runs/demo"
    metrics = ["psnr", "ssim"]

    [data]
    sample = "camera"        # or files = ["img/*.png"], or dataset = "<registered name>"
    size = 32
    channels = 1

    [operator]
    name = "box-inpainting"
    sigma_y = 0.0            # measurement noise (any other key is an operator setting)

    [prior]
    name = "tikhonov"

    [solver]
    name = "hqs"
    iterations = 30

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
DATA_KEYS = {"sample", "files", "dataset", "size", "channels", "limit", "sample_rate", "seconds"}
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
    sources = [k for k in ("sample", "files", "dataset") if k in data]
    if len(sources) != 1:
        raise ConfigError("[data] needs exactly one of sample = \"camera\", files = [...], "
                          f"dataset = \"name\"; got {sources or 'none'}")
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
