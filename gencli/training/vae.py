"""Training a VAE or CVAE: Adam on the negative ELBO, with a weight average that is evaluated and saved."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from gencli import distributed
from gencli.data import ImageSet, load_idx_dataset
from gencli.images import plot_latent, save_grid
from gencli.inference.vae import evaluate, prior_samples
from gencli.losses import vae_loss
from gencli.models.vae import VAEConfig, build
from gencli.registry import get_family
from gencli.runs import (check_more_to_do, clear_run_outputs, epochs_done, hold_run_dir, prepare_run_dir, resolved,
                         resumed_run, write_options)
from gencli.training.common import accumulate, resumed_options, seed_everything, shuffled_batches
from gencli.training.loop import TrainingHooks, TrainingPlan, fit
from gencli.training.option_files import options_document
from gencli.training.options import VAETraining


class VAETask:
    """What the training loop needs from the vae/cvae family: one Adam-trained network and its average."""

    curves = ("train_loss", "test_loss")

    def __init__(self, family: str, config: VAEConfig, train_set: ImageSet, test_set: ImageSet, *, dataset: str,
                 lr: float, batch_size: int, seed: int, device: torch.device, epochs: int,
                 lr_schedule: str = "constant", ema_decay: float = 0.9999, precision: str = "fp32"):
        self.family, self.config, self.seed, self.device = family, config, seed, device
        self.precision = precision  # fp32, or bf16 autocast of the forward pass (the loss stays fp32)
        self.dataset = dataset
        self.model = build(config).to(device)
        self.net = distributed.wrap(self.model, device)  # DistributedDataParallel under torchrun
        # Polyak averaging: an exponential moving average of the weights is evaluated and saved. With a
        # constant learning rate it acts like stochastic weight averaging (README: VAE and conditional VAE).
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if ema_decay > 0 else self.model
        self.ema_decay = ema_decay
        self.world = distributed.world()
        # The fused kernel updates all parameters in one call (faster per step on a CPU).
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))
        self.lr, self.epochs, self.lr_schedule = lr, epochs, lr_schedule
        self.train_x, self.train_y = train_set.images.to(device), train_set.labels.to(device)
        self.test_set = test_set
        self.batch_size = batch_size
        # The same noise (and, for the cvae, the digits 0-9 in turn) decoded after every epoch.
        self.sample_seeds = list(range(64))
        self.sample_labels = torch.arange(64) % 10 if config.num_classes else None
        self.metadata: dict = {}

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        if self.lr_schedule == "cosine":  # from lr down to lr/100 over the run; derived from the epoch alone
            lr = self.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / self.epochs)))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        # One noise vector per training image and epoch, drawn from (seed, epoch): the result depends
        # neither on the number of processes nor on where a resumed run restarted.
        # (A stream of its own: drawn from the shuffling's seed, it would be correlated with the order.)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 2**31)  # CPU seeds are 32-bit
        self.noise = torch.randn(len(self.train_y), self.config.latent_dim, generator=g).to(self.device)
        return shuffled_batches(len(self.train_y), self.batch_size, self.seed, epoch, rank=self.world.rank,
                                world_size=self.world.world_size)

    def train_step(self, idx: torch.Tensor) -> dict[str, float]:
        self.model.train()
        idx = idx.to(self.device)
        x = self.train_x[idx].float() / 255
        y = self.train_y[idx]
        with distributed.autocast(self.precision, self.device):
            logits, mu, logvar = self.net(x, y, self.noise[idx])
        loss, bce, kl = vae_loss(logits.float(), x, mu, logvar)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not self.model:
            accumulate(self.ema, self.model, self.ema_decay_now())
        return {"loss": loss.item(), "bce": bce.item(), "kl": kl.item()}

    def ema_decay_now(self) -> float:
        """The average warms up (decay (1+t)/(10+t), so it spans about the last ninth of the steps) until it
        reaches ema_decay: short runs are not dominated by the initial weights. t is Adam's own step count,
        so a resumed run continues where it was."""
        step = float(self.optimizer.state[self.optimizer.param_groups[0]["params"][0]]["step"])
        return min(self.ema_decay, (1 + step) / (10 + step))

    def end_epoch(self, epoch: int, run_dir: Path, final: bool) -> dict[str, float]:
        metrics, means = evaluate(self.ema, self.test_set.images, self.test_set.labels, seed=self.seed)
        # The observed latent range of the test set: `latent-grid --range auto` spans it.
        self.metadata = {
            "dataset": self.dataset,
            "latent_min": means.min(0).values.tolist(),
            "latent_max": means.max(0).values.tolist(),
        }
        save_grid(prior_samples(self.ema, self.sample_seeds, self.sample_labels),
                  run_dir / "samples" / f"epoch_{epoch:03d}.png", nrow=8)
        if final and self.config.latent_dim >= 2:
            plot_latent(means, self.test_set.labels, run_dir / "latent.png",
                        title=f"{self.family}: test-set latent means (epoch {epoch})")
        return {f"test_{k}": v for k, v in metrics.items()}

    def networks(self) -> dict[str, nn.Module]:
        return {"model": self.model, "ema": self.ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def exported_model(self) -> tuple[nn.Module, dict]:
        """The model to write to model.safetensors (the averaged weights) and its metadata."""
        return self.ema, self.metadata


def plan(options: VAETraining, *, run_dir: str | Path | None = None, resume: bool = False,
         overwrite: bool = False) -> TrainingPlan:
    """What `train` would do, resolved without writing anything: the run folder checked, on `resume` the
    run's options (with this call's length, device and precision) and architecture, the device and the
    precision (`auto`: bf16 autocast where the hardware has it, else fp32)."""
    family = options.family
    spec = get_family(family)
    folder = prepare_run_dir(family, run_dir, resume, overwrite)
    if resume:
        run = resumed_run(folder, family)
        options = resumed_options(run, options, family, folder)
        config = spec.config_from_dict(run.config)
        check_more_to_do(folder, options.epochs)
    else:
        config = spec.default_config(**options.arch())
    dev = distributed.resolve_device(options.device)
    precision, reason = distributed.resolve_precision(options.precision, dev)
    return TrainingPlan(family, options.with_config(config), folder, resume, options.epochs,
                        epochs_done(folder) if resume else 0, str(dev), precision, reason, config)


def train(options: VAETraining, *, run_dir: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, progress: TrainingHooks | None = None) -> Path:
    """Train a vae or cvae as `options` say (see `plan`); returns model.safetensors' path."""
    job = plan(options, run_dir=run_dir, resume=resume, overwrite=overwrite)
    options, config = job.options, job.config
    with hold_run_dir(job.run_dir):  # refused at once if another training holds it
        train_set, test_set = load_idx_dataset(options.data, options.data_dir)
        if not resume:
            clear_run_outputs(job.run_dir)
        dev = distributed.init(distributed.resolve_device(options.device))
        seed_everything(options.seed)
        task = VAETask(job.family, config, train_set, test_set, dataset=options.data, lr=options.lr,
                       batch_size=options.batch_size, seed=options.seed, device=dev, epochs=options.epochs,
                       lr_schedule=options.lr_schedule, ema_decay=options.ema_decay, precision=job.precision)
        write_options(job.run_dir, options_document(
            options, job.family, resolved=resolved(dev, job.precision, job.precision_reason, options.batch_size),
            data={"name": options.data, "images": len(train_set.labels), "test_images": len(test_set.labels)},
            config=asdict(config)))
        return fit(task, job.run_dir, epochs=options.epochs, resume=resume, progress=progress,
                   header=(f"precision {job.precision} ({job.precision_reason})",))
