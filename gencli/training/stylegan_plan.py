"""The plan of a StyleGAN training (`train stylegan`): the run folder, the architecture (gencli's StyleGAN,
gencli.training.stylegan, or NVIDIA's StyleGAN2 with their objective, gencli.training.stylegan2), the network
and the resolved options, without writing anything. Apart from both trainers, which it chooses between."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gencli import distributed
from gencli.data import IDX_DATASETS
from gencli.models.stylegan import StyleGANConfig
from gencli.models.stylegan2 import StyleGAN2Config
from gencli.registry import config_from_dict
from gencli.runs import check_more_to_do, epochs_done, prepare_run_dir, resumed_run
from gencli.training import stylegan2
from gencli.training.common import resumed_options
from gencli.training.loop import TrainingPlan
from gencli.training.options import StyleGANTraining
from gencli.training.stylegan import auto_r1_gamma, chosen_architecture, new_config, stylegan_defaults


def plan(options: StyleGANTraining, *, run_dir: str | Path | None = None, resume: bool = False,
         overwrite: bool = False) -> TrainingPlan:
    """What `train` would do, resolved without writing anything: the run folder (default runs/stylegan)
    checked; the architecture (--arch, or the --init-from network's: stylegan, or NVIDIA's stylegan2 with
    its objective, gencli.training.stylegan2); the network (`new_config`), or on `resume` the run's with its
    options (this call may change the length, the device and the precision); R1's gamma (default 0.0002
    res^2 / batch), the learning rate, the EMA and the x-flips (default: for folders) resolved; the device
    and the precision."""
    folder = prepare_run_dir("stylegan", run_dir, resume, overwrite)
    if resume:
        run = resumed_run(folder, "stylegan")
        options = resumed_options(run, options, "stylegan", folder)
        if run.family == "stylegan2":
            config = config_from_dict(StyleGAN2Config, run.config)
            options = stylegan2.resolve_options(options, config)
        else:
            config = config_from_dict(StyleGANConfig, run.config)
            options = stylegan_defaults(options)
        check_more_to_do(folder, options.total_ticks())
    elif chosen_architecture(options) == "stylegan2":
        config = stylegan2.new_config(options)
        options = stylegan2.resolve_options(options, config)
    else:
        options = stylegan_defaults(options)
        config = new_config(options)
        options = dataclasses.replace(
            options, r1_gamma=auto_r1_gamma(config.resolution, options.batch_size) if options.r1_gamma is None
            else options.r1_gamma, mirror=options.data not in IDX_DATASETS if options.mirror is None else options.mirror)
    dev = distributed.resolve_device(options.device)
    precision, reason = distributed.resolve_precision(options.precision, dev)
    options = stylegan2.with_config(options, config) if isinstance(config, StyleGAN2Config) else options.with_config(config)
    return TrainingPlan("stylegan", options, folder, resume, options.total_ticks(),
                        epochs_done(folder) if resume else 0, str(dev), precision, reason, config)
