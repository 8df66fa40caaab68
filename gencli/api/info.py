"""What a model is and where it comes from, without torch: `gencli info` and the commands' provenance
line answer at once."""

from __future__ import annotations

from pathlib import Path

from gencli.catalog import ModelSource, describe_checkpoint, list_models, locate_checkpoint, watch_models
from gencli.catalog import locate_model as _locate
from gencli.catalog import path_argument
from gencli.registry import FAMILIES

__all__ = ["FAMILY_NAMES", "MODEL_FAMILIES", "ModelSource", "describe_model", "list_models", "locate_checkpoint", "locate_model",
           "path_argument", "watch_models"]

FAMILY_NAMES = tuple(FAMILIES)
MODEL_FAMILIES = tuple(name for name, spec in FAMILIES.items() if spec.commands)  # not the digit classifier


def locate_model(model: str | Path | ModelSource) -> ModelSource:
    """The checkpoint that `model` names: a file, a run folder, an id (bundled:vae, run:NAME,
    imported:NAME) or a name (runs/NAME, an imported model, a bundled one), with where it came from. A
    ModelSource already located is returned as it is."""
    if isinstance(model, ModelSource):
        return model
    return _locate(model, hint="`gencli info` takes a checkpoint file, a run folder, a model id or a model name")


def describe_model(model: str | Path | ModelSource) -> ModelSource:
    """`model` located and described from its header alone: family, epoch, and in `details` the config,
    seed, version, metadata, parameter count and data types."""
    return describe_checkpoint(locate_model(model))


def stylegan2_networks() -> tuple[str, ...]:
    """The names of NVIDIA's StyleGAN2 networks that `download-weights` knows."""
    from gencli.download import NETWORKS  # imported here: gencli.download loads torch (through gencli.files)

    return tuple(NETWORKS)
