"""Checkpoints that rebuild their own model.

`model.safetensors` holds the weights; its metadata holds the family, the config (JSON), the epoch,
the seed, the gencli version and the family's metadata (stored under the key "extra": e.g. the VAE's
latent range), so every command needs only this file. `resume.pt` beside it holds the full training
state (all networks, optimizers, RNG); it contains tensors and plain containers only and is read with
`torch.load(weights_only=True)`.
Both are written to a temporary file and renamed, so a killed process never leaves half a file.
"""

from __future__ import annotations

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
from gencli.files import atomic_write
from gencli.registry import get_family

RESUME_FILE = "resume.pt"


def save_model(path: Path, family: str, model: nn.Module, config, *, epoch: int, seed: int,
               extra: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write the weights and everything needed to rebuild `model` (atomically)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {
        "family": family,
        "config": json.dumps(asdict(config)),
        "epoch": str(epoch),
        "seed": str(seed),
        "gencli_version": __version__,
        "extra": json.dumps(extra or {}),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


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
    if "family" not in raw or "config" not in raw:
        raise GencliError(f"{path} is a safetensors file but not a gencli checkpoint")
    return {
        "family": raw["family"],
        "config": json.loads(raw["config"]),
        "epoch": int(raw.get("epoch", 0)),
        "seed": int(raw.get("seed", 0)),
        "gencli_version": raw.get("gencli_version", ""),
        "extra": json.loads(raw.get("extra", "{}")),
    }


def load_model(path: Path, family: str | set[str] | None = None, device: str | torch.device = "cpu"):
    """Rebuild the model stored in `path`; returns (model in eval mode, metadata).

    `family` restricts which families are accepted (a str or a set of names).
    """
    meta = read_metadata(path)
    wanted = {family} if isinstance(family, str) else family
    if wanted and meta["family"] not in wanted:
        raise GencliError(
            f"{path} holds a {meta['family']} model, but this needs {' or '.join(sorted(wanted))}"
        )
    spec = get_family(meta["family"])
    config = spec.config_from_dict(meta["config"])
    model = spec.build(config)
    try:
        state = load_file(str(path))
    except Exception:
        raise GencliError(f"{path} is not a readable safetensors checkpoint (truncated or corrupt?)") from None
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise GencliError(f"{path}: weights do not match the stored {meta['family']} config") from None
    return model.to(device).eval(), meta


def save_resume(path: Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_resume(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GencliError(f"nothing to resume: {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise GencliError(f"{path} is not a readable resume state (truncated or corrupt?)") from None
