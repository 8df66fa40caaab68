"""What a model is and where it comes from, without torch: `gencli info` and the commands' provenance
line answer at once."""

from __future__ import annotations

from pathlib import Path

from gencli.catalog import ModelSource, describe_checkpoint, watch_models
from gencli.catalog import locate_model as _locate
from gencli.catalog import path_argument
from gencli.download import NETWORKS as STYLEGAN2_NETWORKS  # noqa: F401  (NVIDIA's, by name: download-weights)
from gencli.registry import FAMILIES

__all__ = ["FAMILY_NAMES", "ModelSource", "describe_model", "locate_model", "path_argument", "watch_models"]

FAMILY_NAMES = tuple(FAMILIES)


def locate_model(model: str | Path) -> ModelSource:
    """The checkpoint that `model` names: a file, a run folder, or a name (runs/NAME, an imported model,
    a bundled one), with where it came from."""
    return _locate(model, hint="`gencli info` takes a checkpoint file, a run folder, or a model name")


def describe_model(model: str | Path) -> ModelSource:
    """`model` located and described from its header alone: family, epoch, and in `details` the config,
    seed, version, metadata, parameter count and data types."""
    return describe_checkpoint(locate_model(model))
