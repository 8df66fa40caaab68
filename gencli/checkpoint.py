"""Checkpoints that rebuild their own model.

`model.safetensors` holds the weights; its metadata holds the family, the config (JSON), the epoch,
the seed, the gencli version, the family's metadata (stored under the key "extra": e.g. the VAE's
latent range) and a SHA-256 of the tensor data, so every command needs only this file. `resume.pt` beside
it holds the full training state (all networks, optimizers, RNG, and a copy of the model's metadata); it
contains tensors and plain containers only and is read with `torch.load(weights_only=True)`.

Safety: files are written to a temporary file and renamed, so a killed process never leaves half a file.
A training run writes the two as a pair (`save_checkpoint`): both temporary files first, then resume.pt
renamed, then model.safetensors. A failed write changes neither; a process killed between the two renames
leaves resume.pt one epoch ahead (`pair_split`), which `--resume` follows and then rewrites the model to match,
even when that epoch was the last one asked for.
Loading checks the metadata's JSON and types, then compares the tensor shapes the config would create
(built on PyTorch's `meta` device, which allocates nothing) with those in the file's header before any
memory is allocated, and finally the checksum (files written before it existed have none and still load).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from gencli import __version__
from gencli.catalog import MODEL_FILE  # noqa: F401  (defined beside the rule that finds models)
from gencli.errors import GencliError
from gencli.files import atomic_write, atomic_write_all, shape_mismatch
from gencli.registry import get_family, json_type

RESUME_FILE = "resume.pt"
CHECKSUM_KEY = "sha256"
# A model file may hold, beside the model, the discriminator it was trained with (for fine-tuning), its
# tensors named with this prefix; the family's module then defines build_discriminator(config).
DISCRIMINATOR_PREFIX = "discriminator."


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in key order: name, dtype, shape and raw bytes of each."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _model_file(family: str, model: nn.Module, config, *, epoch: int, seed: int, extra: dict | None,
                dtype: torch.dtype | None = None, discriminator: nn.Module | None = None,
                ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of model.safetensors."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if discriminator is not None:
        tensors.update({DISCRIMINATOR_PREFIX + k: v.detach().to("cpu").contiguous()
                        for k, v in discriminator.state_dict().items()})
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {
        "family": family,
        "config": json.dumps(asdict(config)),
        "epoch": str(epoch),
        "seed": str(seed),
        "gencli_version": __version__,
        "extra": json.dumps(extra or {}),
        CHECKSUM_KEY: tensor_digest(tensors),
    }
    return tensors, metadata


def save_model(path: Path, family: str, model: nn.Module, config, *, epoch: int, seed: int,
               extra: dict[str, Any] | None = None, dtype: torch.dtype | None = None,
               discriminator: nn.Module | None = None) -> Path:
    """Write the weights and everything needed to rebuild `model` (atomically); `discriminator`, when
    given, is stored beside it (see DISCRIMINATOR_PREFIX; read it back with load_discriminator)."""
    tensors, metadata = _model_file(family, model, config, epoch=epoch, seed=seed, extra=extra, dtype=dtype,
                                    discriminator=discriminator)
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def save_checkpoint(run_dir: Path, family: str, model: nn.Module, config, *, epoch: int, seed: int,
                    extra: dict[str, Any], state: dict[str, Any], discriminator: nn.Module | None = None) -> None:
    """model.safetensors and resume.pt of one epoch as a pair (see the module docstring for the order);
    `discriminator`, when given, is kept in model.safetensors beside the model (as save_model keeps it)."""
    run_dir = Path(run_dir)
    tensors, metadata = _model_file(family, model, config, epoch=epoch, seed=seed, extra=extra,
                                    discriminator=discriminator)
    state = {**state, "checkpoint": metadata}
    atomic_write_all([(run_dir / RESUME_FILE, lambda tmp: _torch_save(state, tmp)),
                      (run_dir / MODEL_FILE, lambda tmp: save_file(tensors, tmp, metadata=metadata))])


def pair_split(run_dir: Path, epoch: int) -> bool:
    """Whether model.safetensors lags resume.pt of `epoch` (older, or absent after the first pair): the
    state of a kill between save_checkpoint's two renames."""
    path = Path(run_dir) / MODEL_FILE
    return not path.is_file() or read_metadata(path)["epoch"] != epoch


# --- reading -----------------------------------------------------------------------------------------------

def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _json(raw: dict, key: str, path: Path, default: str | None = None) -> dict:
    text = raw.get(key, default)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (TypeError, ValueError):
        raise GencliError(f"{path}: its {key!r} metadata is not valid JSON") from None
    if not isinstance(value, dict):
        raise GencliError(f"{path}: its {key!r} metadata must be a JSON object, got {json_type(value)}")
    return value


def _count(raw: dict, key: str, path: Path) -> int:
    text = raw.get(key, "0")
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19):
        raise GencliError(f"{path}: its {key!r} metadata must be a non-negative integer, got {text!r}")
    return int(text)


def decode_metadata(raw: dict, path: Path) -> dict[str, Any]:
    """The checked, decoded metadata of a gencli checkpoint (as stored: strings)."""
    if not isinstance(raw, dict) or "family" not in raw or "config" not in raw:
        raise GencliError(f"{path} is a safetensors file but not a gencli checkpoint")
    try:
        get_family(raw["family"])
    except GencliError as e:
        raise GencliError(f"{path}: {e}") from None
    digest = raw.get(CHECKSUM_KEY)
    if digest is not None and not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise GencliError(f"{path}: its {CHECKSUM_KEY!r} metadata is not a SHA-256 digest")
    return {
        "family": raw["family"],
        "config": _json(raw, "config", path),
        "epoch": _count(raw, "epoch", path),
        "seed": _count(raw, "seed", path),
        "gencli_version": raw.get("gencli_version", ""),
        "extra": _json(raw, "extra", path, "{}"),
        CHECKSUM_KEY: digest,
    }


def read_metadata(path: Path) -> dict[str, Any]:
    """The decoded metadata of a gencli checkpoint; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GencliError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception:
        raise GencliError(f"{path} is not a readable safetensors checkpoint (truncated or corrupt?)") from None
    return decode_metadata(raw, path)


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, read from the file's header alone (no tensor is loaded)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception:
        raise GencliError(f"{path} is not a readable safetensors checkpoint (truncated or corrupt?)") from None


def _compare_shapes(path: Path, what: str, expected: dict, stored: dict) -> None:
    detail = shape_mismatch(expected, stored)
    if detail:
        raise GencliError(f"{path}: {what} ({detail})")


def _split(tensors: dict) -> tuple[dict, dict]:
    """(the model's entries, the discriminator's with the prefix removed)."""
    d = {k[len(DISCRIMINATOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(DISCRIMINATOR_PREFIX)}
    return {k: v for k, v in tensors.items() if not k.startswith(DISCRIMINATOR_PREFIX)}, d


def build_checked(path: Path, meta: dict[str, Any], *, discriminator: bool = False):
    """(the model `meta` describes, on the meta device, and a function that builds it for real), with
    `discriminator`: the discriminator stored beside it; only after its config has been checked and the
    tensor shapes it would create compared with those stored in `path` (nothing allocated). A stored
    discriminator is checked either way."""
    spec = get_family(meta["family"])
    stored, stored_d = _split(_header_shapes(path))
    family = meta["family"]
    build_d = getattr(spec.module, "build_discriminator", None)
    if (stored_d or discriminator) and build_d is None:
        raise GencliError(f"{path}: {family} checkpoints hold no discriminator")
    if discriminator and not stored_d:
        raise GencliError(f"{path} holds no discriminator (only the generator was imported or saved)")
    try:
        config = spec.config_from_dict(meta["config"])
        with torch.device("meta"):
            skeleton = spec.build(config)
            d_skeleton = build_d(config) if stored_d else None
    except GencliError as e:
        raise GencliError(f"{path}: bad {family} config: {e}") from None
    except Exception:
        raise GencliError(f"{path}: its config does not describe a {family} model") from None
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    _compare_shapes(path, f"weights do not match the stored {family} config", shapes(skeleton), stored)
    if d_skeleton is not None:
        _compare_shapes(path, f"discriminator weights do not match the stored {family} config",
                        shapes(d_skeleton), stored_d)
    # built on the meta device (_load_into gives it the file's tensors), with the builder for a real one
    return (d_skeleton, lambda: build_d(config)) if discriminator else (skeleton, lambda: spec.build(config))


def _finite(t: torch.Tensor) -> bool:
    """Whether every value of `t` is finite: a finite sum says so in one pass without a mask (a NaN or an
    infinity makes the sum NaN or infinite); only a sum that overflows is checked value by value."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _read_tensors(path: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor of `path`, checked against the stored checksum and for NaN or infinite values."""
    try:
        state = load_file(str(path))
    except Exception:
        raise GencliError(f"{path} is not a readable safetensors checkpoint (truncated or corrupt?)") from None
    if meta[CHECKSUM_KEY] is not None and tensor_digest(state) != meta[CHECKSUM_KEY]:
        raise GencliError(f"{path}: the weights do not match their checksum (the file is corrupt)")
    if not all(_finite(v) for v in state.values() if v.is_floating_point()):
        raise GencliError(f"{path}: the weights hold NaN or infinite values")
    return state


def _load_into(path: Path, meta: dict[str, Any], built, state: dict, device) -> nn.Module:
    """The model of build_checked with the weights of `state`, which become its tensors (no random
    initialization, no copy: a 1024 px StyleGAN2 loads seconds sooner). A model with buffers that the file
    does not hold (computed at construction) is built for real and the weights copied in instead."""
    model, build = built
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        # fresh (aligned) copies: a tensor read from the file may start off the alignment SIMD kernels want,
        # which changes the float rounding of the results
        model.load_state_dict({k: v.clone() for k, v in state.items()}, assign=True)
        if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
            model = build()
            model.load_state_dict(state)
    except RuntimeError:
        raise GencliError(f"{path}: weights do not match the stored {meta['family']} config") from None
    return model.to(device).eval()


def load_model(path: Path, family: str | set[str] | None = None, device: str | torch.device = "cpu"):
    """Rebuild the model stored in `path`; returns (model in eval mode, metadata). A discriminator stored
    beside it (see DISCRIMINATOR_PREFIX) is checked and left out.

    `family` restricts which families are accepted (a str or a set of names).
    """
    meta = read_metadata(path)
    wanted = {family} if isinstance(family, str) else family
    if wanted and meta["family"] not in wanted:
        raise GencliError(
            f"{path} holds a {meta['family']} model, but this needs {' or '.join(sorted(wanted))}"
        )
    model = build_checked(path, meta)
    state, _ = _split(_read_tensors(path, meta))
    return _load_into(path, meta, model, state, device), meta


def load_discriminator(path: Path, device: str | torch.device = "cpu"):
    """The discriminator stored beside the model in `path` (for fine-tuning); returns (D in eval mode,
    metadata). A clear error when the file holds none."""
    path = Path(path)
    meta = read_metadata(path)
    D = build_checked(path, meta, discriminator=True)
    _, state = _split(_read_tensors(path, meta))
    return _load_into(path, meta, D, state, device), meta


def _torch_save(state: dict, path: str) -> None:
    with open(path, "wb") as f:  # through a Python file, a failed write raises the OS's error (e.g. EFBIG)
        torch.save(state, f)


def save_resume(path: Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: _torch_save(state, tmp))


def load_resume(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GencliError(f"nothing to resume: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise GencliError(f"{path} is not a readable resume state (truncated or corrupt?)") from None
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) or state["epoch"] < 0:
        raise GencliError(f"{path} is not a gencli resume state")
    return state
