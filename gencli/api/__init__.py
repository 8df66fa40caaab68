"""The library face of gencli: every function a command calls. They check the options (errors name the
command-line option), find and open models, and call the training, inference and weights layers; they
return tensors, numbers and paths and never print, so they are usable from Python as from the CLI.

One module per family (`vae`, `cyclegan`, `stylegan`), `projection` (`gencli project`), `exports`, `common` for
option checks, `options` for the training options objects and `info` for what needs no torch (finding a model,
reading its header); everything is importable from `gencli.api`
itself, with what the CLI needs besides: the training hooks it renders and the torchrun helpers
(`distributed`). Names are imported on first use, so that `gencli.api.common` and `gencli.api.info` (and
`gencli --help`, `info` and usage errors) load no torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "gencli.distributed": ["distributed"],
    "gencli.api.common": ["check_numbers", "check_positive", "check_truncation", "parse_seeds"],
    "gencli.api.info": ["ModelSource", "describe_model", "list_models", "locate_model", "watch_models"],
    "gencli.api.cyclegan": ["download_dataset", "download_weights", "downloaded_dataset", "export_fp16", "import_cyclegan",
                            "train_cyclegan", "translate"],
    "gencli.api.stylegan": ["class_names", "download_network", "import_stylegan", "interpolate", "style_mix", "train_stylegan"],
    "gencli.api.vae": ["evaluate", "latent_grid", "reconstruct", "sample", "train_vae"],
    "gencli.api.exports": ["export", "EXPORT_FORMATS"],
    "gencli.checkpoint": ["read_metadata"],
    "gencli.runs": ["RUNS_DIR", "bundled_checkpoint", "find_checkpoint", "models_dir", "open_model"],
    "gencli.training.loop": ["TrainingHooks", "TrainingPlan"],
    "gencli.training.options": ["CycleGANTraining", "StyleGANTraining", "VAETraining"],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE_OF)


SUBMODULES = ("common", "cyclegan", "evaluation", "exports", "info", "options", "projection", "stylegan", "vae")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"gencli.api.{name}")
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'gencli.api' has no attribute {name!r}")
    module = importlib.import_module(_MODULE_OF[name])
    value = module if name == "distributed" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
