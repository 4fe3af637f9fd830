"""Finding and loading diffusers checkpoints, offline: the one loader of the diffusers priors.

:func:`load_pretrained` is what ``DiffusersPrior``, ``LatentDiffusionPrior`` and
``ConsistencyPrior`` load with; :func:`check_folder` and :func:`load_model` also serve priors
of one fixed layout and their own network classes (pnpkit-audio's).

Three folder layouts are understood:

1. a saved diffusers pipeline (``model_index.json`` naming its components, each in the
   subfolder of its name: ``unet/``, ``scheduler/``, ``vae/`` or ``vqvae/``);
2. a folder holding ``unet/`` and ``scheduler/`` subfolders (and ``vae/`` or ``vqvae/`` for a
   latent model), as written by ``save_pretrained`` on each part;
3. a model folder (``config.json`` and ``diffusion_pytorch_model.safetensors``) with a
   scheduler configuration next to it (``scheduler_config.json``) or given separately.

A Hugging Face hub id (``"org/name"``) is looked up in the local Hugging Face cache only
(``local_files_only``): nothing is ever downloaded. diffusers is imported inside the
functions, so importing this module stays cheap.

A damaged checkpoint is one line naming the file and the fix: a corrupt or truncated
``.safetensors`` file (its header is read before diffusers sees it), a ``config.json`` /
``scheduler_config.json`` / ``model_index.json`` that is not JSON, weights whose tensors do
not fit their ``config.json`` (another channel count), and a ``.bin`` that ``torch.load``
refuses with ``weights_only=True`` (it holds pickled objects, not only tensors). Weights are
only ever read as tensors: safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from pnpkit.priors import DTYPES, torch_dtype  # noqa: F401  (re-exported for the other modules)

UNET_CLASSES = ("UNet2DModel", "UNet1DModel")
VAE_CLASSES = ("AutoencoderKL", "VQModel")
VAE_FOLDERS = ("vae", "vqvae")
LAYOUTS = ("a diffusers pipeline folder (model_index.json with unet/ and scheduler/ subfolders), "
           "a folder with unet/ and scheduler/ subfolders, or a model folder (config.json and "
           "diffusion_pytorch_model.safetensors) with a scheduler_config.json next to it or "
           "scheduler = PATH")


@dataclass
class Checkpoint:
    """Where the parts of one checkpoint lie.

    :param pathlib.Path root: the folder that was resolved.
    :param pathlib.Path unet: the folder of the denoising network.
    :param dict scheduler_config: the scheduler's configuration (``scheduler_config.json``).
    :param pathlib.Path vae: the folder of the autoencoder of a latent model, or ``None``.
    """

    root: Path
    unet: Path
    scheduler_config: dict[str, Any]
    vae: Path | None = None


def listing(folder: Path) -> str:
    """What ``folder`` holds, for error messages: ``"config.json, unet/"`` (folders end in ``/``).

    :param pathlib.Path folder: an existing folder.
    """
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names) if names else "nothing (the folder is empty)"


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return (len(parts) == 2 and all(parts) and not text.startswith((".", "~"))
            and "\\" not in text)


def resolve(path_or_id: str | Path, cache_dir: str | Path | None = None,
            revision: str | None = None) -> Path:
    """The local folder of a checkpoint: a path as is, a hub id from the local cache.

    :param str path_or_id: a folder, or a Hugging Face hub id such as ``"google/ddpm-cifar10-32"``.
    :param str cache_dir: the Hugging Face cache to look in (default: the usual one, ``HF_HUB_CACHE``).
    :param str revision: a branch, tag or commit of the hub repository (default ``"main"``).
    :raises FileNotFoundError: when the folder does not exist and no cache entry matches.
    """
    path = Path(path_or_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{str(path)!r} is a file; give the checkpoint's folder "
                                    f"({LAYOUTS})")
        return path
    text = str(path_or_id)
    if _looks_like_hub_id(text):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(repo_id=text, revision=revision, cache_dir=cache_dir,
                                          local_files_only=True))
        except Exception as exc:  # not in the cache (or a malformed cache entry)
            where = cache_dir or "the default Hugging Face cache (HF_HUB_CACHE)"
            raise FileNotFoundError(
                f"checkpoint {text!r}: no such folder, and no copy of the hub repository "
                f"{text!r} in {where} ({type(exc).__name__}). pnpkit never downloads: fetch it "
                f"on a machine with network access (`hf download {text}`) and copy the cache, "
                f"or give the path of a local folder") from None
    raise FileNotFoundError(f"checkpoint folder {str(path)!r} does not exist")


def display_name(path_or_id: str | Path) -> str:
    """A short name for messages: a local folder's name, or the hub id.

    :param str path_or_id: what the checkpoint was loaded from.
    """
    local = Path(path_or_id).expanduser()
    return local.resolve().name if local.exists() else str(path_or_id)


def _check_model_folder(folder: Path, what: str, variant: str | None = None) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {str(folder)!r} does not exist")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json (found: {listing(folder)}); "
                                f"expected the {what}'s config.json and "
                                "diffusion_pytorch_model.safetensors, as save_pretrained writes them")
    stems = ["diffusion_pytorch_model" + (f".{variant}" if variant else "")]
    suffixes = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")
    if not any((folder / (s + x)).is_file() for s in stems for x in suffixes):
        wanted = f"{stems[0]}.safetensors (or .bin)"
        raise FileNotFoundError(f"{folder} holds no weights (found: {listing(folder)}); "
                                f"expected {wanted} next to config.json")


def read_json(file: Path) -> dict[str, Any]:
    """A checkpoint's JSON file (``config.json``, ``scheduler_config.json``, ...) as a dict.

    :raises ValueError: one line naming the file when it is not a JSON object.
    """
    try:
        value = json.loads(Path(file).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is corrupt, not JSON ({exc}); replace it with the checkpoint's "
                         f"own {Path(file).name} (save_pretrained writes it)") from None
    if not isinstance(value, dict):
        raise ValueError(f"{file} is not a JSON object (got {type(value).__name__}); replace it "
                         f"with the checkpoint's own {Path(file).name} (save_pretrained writes it)")
    return value


def scheduler_config(path: Path) -> dict[str, Any]:
    file = path / "scheduler_config.json" if path.is_dir() else path
    if not file.is_file():
        found = listing(path) if path.is_dir() else "no such file"
        raise FileNotFoundError(f"no scheduler configuration at {str(path)!r} (found: {found}); "
                                "expected a folder with scheduler_config.json, or the JSON file")
    return read_json(file)


def find_parts(root: Path, scheduler: str | Path | None = None, variant: str | None = None,
               need_vae: bool = False) -> Checkpoint:
    """Locate the network, the scheduler and (for latent models) the autoencoder of ``root``.

    :param pathlib.Path root: a resolved checkpoint folder (see :func:`resolve`).
    :param str scheduler: a scheduler folder or ``scheduler_config.json`` that overrides the
        checkpoint's own (required for a bare model folder without ``scheduler_config.json``).
    :param str variant: the weights' variant (``"fp16"`` for
        ``diffusion_pytorch_model.fp16.safetensors``).
    :param bool need_vae: whether an autoencoder (``vae/`` or ``vqvae/``) must be present.
    :raises FileNotFoundError: naming what was found and what was expected.
    """
    unet: Path | None = None
    sched: Path | None = None
    vae: Path | None = None
    index = root / "model_index.json"
    if index.is_file():
        for key, value in read_json(index).items():
            if key.startswith("_") or not isinstance(value, list) or len(value) != 2:
                continue
            cls = str(value[1] or "")
            if cls.startswith("UNet"):
                unet = root / key
            elif cls.endswith("Scheduler"):
                sched = root / key
            elif cls in VAE_CLASSES or key in VAE_FOLDERS:
                vae = root / key
        if unet is None:
            raise FileNotFoundError(f"{index} names no UNet component; expected an entry such as "
                                    "\"unet\": [\"diffusers\", \"UNet2DModel\"]")
    elif (root / "unet").is_dir():
        unet = root / "unet"
        sched = root / "scheduler" if (root / "scheduler").is_dir() else None
        vae = next((root / f for f in VAE_FOLDERS if (root / f).is_dir()), None)
    elif (root / "config.json").is_file():
        unet = root
        sched = root if (root / "scheduler_config.json").is_file() else None
    else:
        raise FileNotFoundError(f"{root} is not a diffusers checkpoint (found: {listing(root)}); "
                                f"expected {LAYOUTS}")
    _check_model_folder(unet, "network", variant)
    if scheduler is not None:
        config = scheduler_config(Path(scheduler).expanduser())
    elif sched is None:
        raise FileNotFoundError(f"{root} holds a network but no scheduler (found: {listing(root)}); "
                                "expected a scheduler/ subfolder with scheduler_config.json, or "
                                "pass scheduler = PATH (a folder or scheduler_config.json)")
    else:
        config = scheduler_config(sched)
    if need_vae:
        if vae is None:
            raise FileNotFoundError(f"{root} holds no autoencoder (found: {listing(root)}); a latent "
                                    "diffusion checkpoint needs vae/ (AutoencoderKL) or vqvae/ "
                                    "(VQModel) next to unet/ and scheduler/")
        _check_model_folder(vae, "autoencoder", None)
    return Checkpoint(root=root, unet=unet, scheduler_config=config, vae=vae)


def check_folder(folder: str | Path, what: str, layout: str,
                 parts: Mapping[str, tuple[str, ...]]) -> Path:
    """Check a checkpoint of one fixed layout: each subfolder of ``parts`` holds its files.

    For priors whose checkpoints have a single layout (the audio prior's ``unet/`` +
    ``scheduler/``); :func:`find_parts` understands the several layouts of diffusers.

    :param str folder: the checkpoint folder.
    :param str what: what the folder is called in messages (``"audio prior folder"``).
    :param str layout: the expected layout, in words, ending every message.
    :param dict parts: subfolder name -> the files it must hold.
    :return: the folder, as a path.
    :raises FileNotFoundError: for a missing folder or missing parts, naming what is there.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{what} {str(root)!r} does not exist; expected {layout}")
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is a file; give the checkpoint's folder, {layout}")
    for part in parts:
        if not (root / part).is_dir():
            raise FileNotFoundError(f"{root} holds no {part}/ (found: {listing(root)}); "
                                    f"expected {layout}")
    for part, files in parts.items():
        for name in files:
            if not (root / part / name).is_file():
                raise FileNotFoundError(f"{root / part} holds no {name} (found: "
                                        f"{listing(root / part)}); expected {layout}")
    return root


def load_model(folder: Path, allowed: tuple[str, ...] | Mapping[str, type],
               device: str | torch.device, dtype: torch.dtype, variant: str | None = None,
               hint: str = "") -> Any:
    """Load a diffusers model whose ``config.json`` names one of the ``allowed`` classes.

    :param pathlib.Path folder: the model's folder (``config.json`` + weights).
    :param tuple allowed: the accepted values of the config's ``_class_name`` (diffusers
        classes), or a mapping of names to model classes defined elsewhere (any
        ``diffusers.ModelMixin``, such as pnpkit-audio's 1-D network).
    :param str device: where the model goes.
    :param torch.dtype dtype: the dtype of its weights (converted on loading when they differ).
    :param str variant: the weights' variant, e.g. ``"fp16"``.
    :param str hint: appended to the error message of an unknown class.
    :raises ValueError: for a model class outside ``allowed``.
    """
    config = read_json(folder / "config.json")
    name = config.get("_class_name")
    if name not in allowed:
        raise ValueError(f"unknown model class {name!r}: {folder / 'config.json'} describes a "
                         f"{name!r}; this prior loads {' or '.join(allowed)}{hint}")
    if isinstance(allowed, Mapping):
        cls = allowed[name]
    else:
        import diffusers

        cls = getattr(diffusers, name)
    weights = weights_files(folder, variant)
    for file in weights:
        if file.suffix == ".safetensors":
            check_safetensors(file)
    try:
        with _diffusers_quiet():
            model = cls.from_pretrained(str(folder), torch_dtype=dtype, variant=variant,
                                        local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, RuntimeError, ValueError) as exc:
        raise _weights_error(folder, weights, exc) from None
    model.requires_grad_(False)
    return model.to(device).eval()


def weights_files(folder: Path, variant: str | None = None) -> list[Path]:
    """The weight files of a model folder that diffusers would read (safetensors first)."""
    stem = "diffusion_pytorch_model" + (f".{variant}" if variant else "")
    for suffix in (".safetensors", ".bin"):
        single = folder / (stem + suffix)
        if single.is_file():
            return [single]
        shards = sorted(folder.glob(f"{stem}-*-of-*{suffix}"))
        if shards:
            return shards
    return []


def load_tensors(file: str | Path) -> Any:
    """A weights file's content, as tensors only: ``.safetensors``, else ``torch.load`` with
    ``weights_only=True``.

    :raises ValueError: one line naming the file when it is corrupt, truncated, or holds
        pickled objects that ``weights_only`` refuses (pnpkit never unpickles code).
    """
    import pickle

    file = Path(file)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        check_safetensors(file)
        return load_file(str(file))
    try:
        return torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{file}: torch.load(weights_only=True) refuses it: the file holds pickled "
                         "objects, not only tensors, and pnpkit never unpickles code; give the "
                         "weights as a .safetensors file (safetensors.torch.save_file of the state "
                         "dict)") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{file} is corrupt or truncated ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); copy the weights again "
                         "from where they came from") from None


def check_safetensors(file: Path) -> None:
    """Read a ``.safetensors`` file's header and check that its tensors fill the file.

    :raises ValueError: one line naming the file when it is corrupt, empty or truncated.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as exc:
        size = file.stat().st_size
        raise ValueError(f"{file} is corrupt or truncated ({size} bytes; safetensors: {exc}); copy "
                         "the weights again from where they came from") from None


class _diffusers_quiet:
    """diffusers' log off while a local model loads: its "defaulting to unsafe serialization"
    note is wrong here (a ``.bin`` is read with ``weights_only=True``), and every failure is
    raised, then said in one line by :func:`load_model`."""

    def __enter__(self) -> None:
        from diffusers.utils import logging

        self.level = logging.get_verbosity()
        logging.set_verbosity(logging.CRITICAL)  # its "error" on a missing .safetensors too

    def __exit__(self, *exc: object) -> None:
        from diffusers.utils import logging

        logging.set_verbosity(self.level)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _weights_error(folder: Path, weights: list[Path], exc: BaseException) -> ValueError:
    """One line for a model whose weights diffusers could not load (never a hint to unpickle)."""
    import pickle
    import re

    where = ", ".join(str(w) for w in weights) or str(folder)
    chain = _chain(exc)
    if any(isinstance(e, pickle.UnpicklingError) for e in chain) or (
            weights and weights[0].suffix == ".bin" and "Unable to load weights" in str(exc)):
        return ValueError(f"{where}: torch.load(weights_only=True) refuses it: the file holds "
                          "pickled objects, not only tensors, and pnpkit never unpickles code; "
                          "give the weights as diffusion_pytorch_model.safetensors (save_pretrained "
                          "writes it)")
    text = str(exc)
    mismatch = re.search(r"size mismatch for ([\w.]+): copying a param with shape torch.Size\((\[[^\]]*\])\) "
                         r"from checkpoint, the shape in current model is torch.Size\((\[[^\]]*\])\)", text)
    if mismatch:
        key, got, want = mismatch.groups()
        return ValueError(f"{where}: the weights do not fit {folder / 'config.json'} ({key} is {got} "
                          f"in the file, {want} for the config: another channel count or size); give "
                          "the config.json saved with these weights")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return ValueError(f"{where}: cannot be loaded ({type(exc).__name__}: {first}); check that the "
                      "folder holds the config.json and weights save_pretrained wrote together")


def build_scheduler(config: dict[str, Any]) -> Any:
    """Instantiate the diffusers scheduler that ``config`` (a ``scheduler_config.json``) names.

    :param dict config: the scheduler configuration, with its ``_class_name``.
    :raises ValueError: when diffusers has no scheduler of that name.
    """
    import diffusers

    name = config.get("_class_name")
    cls = getattr(diffusers, str(name), None)
    if cls is None or not str(name).endswith("Scheduler"):
        raise ValueError(f"unknown scheduler class {name!r}; expected a diffusers scheduler such "
                         "as DDPMScheduler or DDIMScheduler")
    return cls.from_config(config)


@dataclass
class Loaded:
    """What :func:`load_pretrained` loaded.

    :param torch.nn.Module unet: the denoising network, frozen, in eval mode.
    :param scheduler: its diffusers scheduler.
    :param torch.nn.Module vae: the autoencoder of a latent model, or ``None``.
    :param str name: the prior's name (the one asked for, or the checkpoint's).
    """

    unet: Any
    scheduler: Any
    vae: Any | None
    name: str


def load_pretrained(path_or_id: str | Path, device: str | torch.device = "cpu",
                    dtype: str | torch.dtype = "float32", *, scheduler: str | Path | None = None,
                    model_dtype: str | None = None, variant: str | None = None,
                    cache_dir: str | Path | None = None, revision: str | None = None,
                    name: str | None = None, need_vae: bool = False,
                    unet_classes: tuple[str, ...] | Mapping[str, type] = UNET_CLASSES) -> Loaded:
    """Load the parts of a diffusers checkpoint, offline: the one loader of the diffusers priors.

    ``DiffusersPrior``, ``LatentDiffusionPrior`` and ``ConsistencyPrior`` all load through
    it; their ``from_pretrained`` pass it the loading options below as ``**load``.

    :param str path_or_id: a saved diffusers pipeline, a folder with ``unet/`` and
        ``scheduler/`` (and ``vae/`` or ``vqvae/``), a model folder with a scheduler
        configuration, or a hub id in the local Hugging Face cache (see :func:`resolve`).
    :param str device: where the networks run.
    :param str dtype: the signals' dtype; the networks run in it unless ``model_dtype`` is given.
    :param str scheduler: a scheduler folder or ``scheduler_config.json`` overriding the
        checkpoint's.
    :param str model_dtype: the networks' dtype (``"float16"``, ``"bfloat16"``, ...); inputs are
        cast to it and outputs back.
    :param str variant: the network's weights variant (``"fp16"`` loads
        ``diffusion_pytorch_model.fp16.safetensors``).
    :param str cache_dir: the Hugging Face cache to search for a hub id.
    :param str revision: the revision of a hub id.
    :param str name: the prior's name in messages (default: the folder's name or the hub id).
    :param bool need_vae: load the autoencoder of a latent model too.
    :param tuple unet_classes: the network classes accepted (see :func:`load_model`).
    :raises FileNotFoundError: for a missing folder or a folder without the expected files.
    :raises ValueError: for a network class outside ``unet_classes``.
    """
    root = resolve(path_or_id, cache_dir=cache_dir, revision=revision)
    parts = find_parts(root, scheduler=scheduler, variant=variant, need_vae=need_vae)
    net_dtype = torch_dtype(model_dtype, torch_dtype(dtype))
    unet = load_model(parts.unet, unet_classes, device, net_dtype, variant)
    vae = None
    if need_vae:
        assert parts.vae is not None  # find_parts raised otherwise
        vae = load_model(parts.vae, VAE_CLASSES, device, net_dtype)
    return Loaded(unet=unet, scheduler=build_scheduler(parts.scheduler_config), vae=vae,
                  name=name or display_name(path_or_id))


#: The documentation of the loading settings the diffusers prior factories share, written
#: once and put into each factory's docstring where it says ``{loading}`` (see
#: :func:`loading_docs`), so that ``pnpkit show`` prints it for every one of them.
LOADING_DOCS = """
:param str scheduler: a scheduler folder or ``scheduler_config.json`` overriding the checkpoint's.
:param str model_dtype: the network's dtype (default: the signals' dtype).
:param str variant: the weights' variant, e.g. ``"fp16"``.
:param bool check_size: whether the network's inputs must have its training size (false: any
    size, reflect-padded to a multiple of the network's down-sampling and cropped back).
:param int class_label: the class of a class-conditional network.
:param str cache_dir: the Hugging Face cache to search for a hub id.
:param bool channels_last: run a 2-D network with channels-last weights and inputs (faster on
    CPUs, the same result to float rounding); false: the standard layout.
:param str device: set by the pipeline.
:param str dtype: set by the pipeline."""

F = TypeVar("F", bound=Callable[..., Any])


def loading_docs(factory: F) -> F:
    """Put :data:`LOADING_DOCS` into ``factory``'s docstring at ``{loading}`` (a shared docstring).

    :param callable factory: a prior factory whose docstring holds ``{loading}`` on a line of its own.
    """
    doc = factory.__doc__ or ""
    line = next(ln for ln in doc.splitlines() if ln.strip() == "{loading}")
    indent = line[:len(line) - len(line.lstrip())]
    shared = "\n".join(indent + ln for ln in LOADING_DOCS.strip().splitlines())
    factory.__doc__ = doc.replace(line, shared)
    return factory
