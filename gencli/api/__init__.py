"""The library face of gencli: every function a command calls. They check the options (errors name the
command-line option), find and open models, and call the training, inference and weights layers; they
return tensors, numbers and paths and never print, so they are usable from Python as from the CLI.

One module per family (`vae`, `cyclegan`, `stylegan`) and `common` for option parsing; everything is
importable from `gencli.api` itself, with what the CLI needs besides: the training hooks it renders and
the torchrun helpers (`distributed`).
"""

from gencli import distributed
from gencli.api.common import check_positive, check_truncation, parse_range, parse_seeds
from gencli.api.cyclegan import (download_dataset, download_weights, export_fp16, import_cyclegan, train_cyclegan,
                                 translate)
from gencli.api.stylegan import class_names, import_stylegan, interpolate, style_mix, train_stylegan
from gencli.api.vae import evaluate, latent_grid, reconstruct, sample, train_vae
from gencli.checkpoint import read_metadata
from gencli.runs import RUNS_DIR, bundled_checkpoint, find_checkpoint, models_dir, open_model
from gencli.training.loop import TrainingHooks

__all__ = [
    "RUNS_DIR", "TrainingHooks", "distributed", "bundled_checkpoint", "check_positive", "check_truncation", "class_names", "download_dataset", "download_weights",
    "evaluate", "export_fp16", "find_checkpoint", "import_cyclegan", "import_stylegan", "interpolate", "latent_grid",
    "models_dir", "open_model", "parse_range", "parse_seeds", "read_metadata", "reconstruct", "sample", "style_mix",
    "train_cyclegan", "train_stylegan", "train_vae", "translate",
]
