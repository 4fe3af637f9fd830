"""TOML pipeline configurations: parsing, validation and the fully resolved form.

A configuration names the data, the operator, the prior, the solver, the metrics, the seed
and the output folder. Simulated: a clean reference is measured through the operator::

    seed = 0
    output = "runs/demo"
    metrics = ["psnr", "ssim"]
    device = "cpu"           # or "cuda", "cuda:1", "mps" (`pnpkit run --device` overrides it)
    dtype = "float32"        # or "float64": the signals' dtype

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

Top-level keys: ``seed`` (a whole number; item ``i`` is seeded ``seed + i``), ``output`` (the
folder, relative to this file), ``metrics``, ``device`` (``"cpu"`` by default, ``"cuda"``,
``"cuda:N"`` or ``"mps"``: a device this machine lacks is one line naming the ones it has;
under ``torchrun`` each rank takes ``cuda:LOCAL_RANK``) and ``dtype`` (``"float32"`` by
default, or ``"float64"``). ``precision = "bf16"`` or ``"fp16"`` (absent by default) runs the
prior's network under ``torch.autocast`` in that precision while the solver's arithmetic
stays in ``dtype``: the network's output is cast back (:attr:`pnpkit.priors.Prior.precision`).

Unknown keys are errors that name the closest valid key, and a value of the wrong type or
range is one line naming its key. Configuration files are data: nothing in them is executed.
"""

from __future__ import annotations

import copy
import inspect
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plugins import get_manager, suggest

TOP_KEYS = {"seed", "output", "device", "dtype", "precision", "metrics", "data", "operator",
            "prior", "solver"}
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


def check_number(value: Any, key: str, example: str, *, whole: bool = False,
                 minimum: float | None = None, above: float | None = None) -> None:
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is a number in range.

    :param value: the configured value.
    :param str key: how the message names it (``"[data] size"``).
    :param str example: a setting that works, for the message (``"size = 64"``).
    :param bool whole: whether it must be a whole number.
    :param minimum: the smallest value allowed.
    :param above: a bound the value must exceed.

    >>> check_number("32", "[data] size", "size = 32", whole=True, above=0)
    Traceback (most recent call last):
    ...
    pnpkit.config.ConfigError: [data] size must be a whole number > 0 (e.g. size = 32), got '32' (a string)
    """
    kind = "a whole number" if whole else "a number"
    number = isinstance(value, int) if whole else isinstance(value, (int, float))
    ok = number and not isinstance(value, bool) and value == value
    if ok and minimum is not None:
        ok = value >= minimum
    if ok and above is not None:
        ok = value > above
    if not ok:
        bound = f" >= {minimum:g}" if minimum is not None else f" > {above:g}" if above is not None else ""
        got = f"{value!r} (a string)" if isinstance(value, str) else repr(value)
        raise ConfigError(f"{key} must be {kind}{bound} (e.g. {example}), got {got}")


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
    if not isinstance(raw["output"], str) or not raw["output"]:
        raise ConfigError(f"output must be a folder path, e.g. output = \"runs/NAME\"; got "
                          f"{raw['output']!r}")
    check_number(raw["seed"], "seed", "seed = 0", whole=True, minimum=0)
    if not isinstance(raw["device"], str):
        raise ConfigError(f"device must be a string such as \"cpu\", \"cuda\", \"cuda:1\" or "
                          f"\"mps\"; got {raw['device']!r}")
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
    if prior.get("tile") is not None:
        from .tiling import check_tile  # the one check of the tiling settings (the pipeline's too)

        tile = prior["tile"]
        given = prior.get("overlap")
        try:
            check_tile(tile, tile // 4 if given is None and isinstance(tile, int) else given)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if "overlap" in prior and "tile" not in prior:
        raise ConfigError("[prior] overlap goes with tile = N (the tile size in pixels); add tile")
    if "dataset" not in data:
        for key in data:
            if key not in DATA_KEYS:
                raise unknown_key(key, DATA_KEYS, "[data]")
    for key, example, whole, above in (("size", "size = 64", True, 0), ("limit", "limit = 4", True, 0),
                                       ("sample_rate", "sample_rate = 16000", True, 0),
                                       ("seconds", "seconds = 4.0", False, 0)):
        if key in data and not (key == "sample_rate" and data[key] is None):
            check_number(data[key], f"[data] {key}", example, whole=whole, above=above)
    if "channels" in data and not (isinstance(data["channels"], int) and not isinstance(
            data["channels"], bool) and data["channels"] >= 1):
        raise ConfigError(f"[data] channels must be a whole number >= 1 (images: 1 = grey, 3 = "
                          f"colour; audio: 1 = down-mix to mono), got {data['channels']!r}")
    if not isinstance(raw["metrics"], list) or not all(isinstance(m, str) for m in raw["metrics"]):
        raise ConfigError("metrics must be a list of names, e.g. metrics = [\"psnr\", \"ssim\"]")
    if raw["dtype"] not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {raw['dtype']!r}")
    if "precision" in raw and raw["precision"] not in ("bf16", "fp16"):
        raise ConfigError(f"precision must be \"bf16\" or \"fp16\" (the prior's network under "
                          f"autocast; leave it out for float32), got {raw['precision']!r}")
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


_SIMPLE: dict[Any, type] = {int: int, float: float, str: str, bool: bool, type(None): type(None),
                            "int": int, "float": float, "str": str, "bool": bool,
                            "None": type(None)}


def _expected(annotation: Any, default: Any) -> tuple[type, ...] | None:
    """The simple types a parameter takes, from its annotation, else its default; None: any."""
    if annotation is inspect.Parameter.empty:
        if isinstance(default, (bool, int, float, str)):
            return (type(default),)
        return None
    if isinstance(annotation, str):
        options: tuple[Any, ...] = tuple(a.strip() for a in annotation.split("|"))
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
    else:
        options = (annotation,)
    if not all(o in _SIMPLE for o in options):
        return None  # a container, a path, Any...: the factory decides
    return tuple(_SIMPLE[o] for o in options)


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and (int in kinds or float in kinds):
        return True
    return any(isinstance(value, k) for k in kinds if k is not bool)


def check_setting_types(factory: Any, settings: dict[str, Any], where: str) -> None:
    """Raise a :class:`ConfigError` naming the key when a setting cannot have the type the
    factory's parameter has (its annotation, else its default's type): ``count = "3"`` for
    ``count: int = 3``. Containers, paths and untyped parameters are left to the factory.

    :param factory: a component's factory (function or class).
    :param dict settings: the configured settings.
    :param str where: the table, for the message (``"[operator] (operator 'blur')"``).

    >>> def toy(count: int = 3, sigma_y=0.0, path=None): ...
    >>> check_setting_types(toy, {"count": 2, "sigma_y": 0, "path": "x"}, "[data]")
    >>> check_setting_types(toy, {"sigma_y": "0.1"}, "[operator]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pnpkit.config.ConfigError: [operator] sigma_y must be a number, got '0.1' (a string); write it ...
    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    try:
        hints = typing.get_type_hints(vars(factory).get("__init__", factory) if isinstance(
            factory, type) else factory)
    except Exception:  # unresolvable annotations: read them as written
        hints = {}
    for key, value in settings.items():
        param = params.get(key)
        if param is None or value is None:
            continue
        kinds = _expected(hints.get(key, param.annotation), param.default)
        if kinds is None or _fits(value, kinds):
            continue
        words = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}
        names = " or ".join(dict.fromkeys(words[k] for k in kinds if k in words))
        got = f"{value!r} (a string)" if isinstance(value, str) else repr(value)
        example = param.default if param.default not in (None, inspect.Parameter.empty) else None
        fix = (f"; write it without quotes, e.g. {key} = {json.dumps(example)}"
               if isinstance(value, str) and example is not None and not isinstance(example, str)
               else f", e.g. {key} = {json.dumps(example)}" if example is not None else "")
        raise ConfigError(f"{where} {key} must be {names}, got {got}{fix}")

