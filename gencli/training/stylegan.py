"""Training a StyleGAN (Karras et al. 2019, App. C): non-saturating logistic loss, lazy R1, style-mixing
regularization, a moving average of G, and transfer learning (--init-from, Freeze-D). The network names
are in gencli.models.stylegan. Training length is counted in ticks of `tick_kimg` thousand images, which
the training loop runs as its epochs.

Additions from later papers: class-conditional training (StyleGAN2-ADA, Karras et al. 2020b; fake labels
follow the training labels, w_avg is kept per class) and DiffAugment (Zhao et al. 2020,
gencli.training.augment) on every image D sees, for small data sets.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gencli import distributed
from gencli.checkpoint import RESUME_FILE, load_resume, read_metadata
from gencli.catalog import locate_checkpoint
from gencli.data import (IDX_DATASETS, class_names, describe_loading, load_labelled_images, load_training_images,
                         match_channels)
from gencli.errors import ConfigError, GencliError
from gencli.images import save_grid
from gencli.inference.stylegan import class_rows, generate
from gencli.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss
from gencli.models.stylegan import Discriminator, Generator, StyleGANConfig, default_widths
from gencli.registry import config_from_dict
from gencli.runs import (clear_run_outputs, hold_run_dir, resolved,
                         write_options)
from gencli.training.augment import diff_augment, draw_augment, parse_augment
from gencli.training.common import accumulate, requires_grad, seed_everything, shard, stream_batches
from gencli.training.loop import TrainingHooks, TrainingPlan, fit
from gencli.training.option_files import options_document
from gencli.training.options import StyleGANTraining


def frozen_names(G: Generator, D: Discriminator, freeze_mapping: bool, freeze_d: int) -> tuple[frozenset, frozenset]:
    """Parameter names kept fixed: G's mapping network; D's from-RGB and first `freeze_d` blocks
    (Freeze-D, Mo et al. 2020: the layers next to the input)."""
    if not 0 <= freeze_d <= len(D.blocks):
        raise ConfigError("freeze_d", f"must be between 0 and {len(D.blocks)} (D's blocks), got {freeze_d}")
    g = {n for n, _ in G.named_parameters() if freeze_mapping and n.startswith("mapping.")}
    prefixes = (["from_rgb."] if freeze_d else []) + [f"blocks.{i}." for i in range(freeze_d)]
    d = {n for n, _ in D.named_parameters() if n.startswith(tuple(prefixes))} if prefixes else set()
    return frozenset(g), frozenset(d)


def draw_latents(G: Generator, batch: int, mixing_prob: float, generator: torch.Generator,
                 label_pool: torch.Tensor | None = None) -> dict:
    """Generator inputs for `batch` images from `generator`: z, per-layer noise, and (with probability
    `mixing_prob`, style-mixing regularization, Sec. 3.1) a second z taking over from a random cutoff.
    A conditional G also gets labels: those of random images of `label_pool` (the training labels, so
    fakes follow the data's class distribution, as StyleGAN2-ADA draws them); drawn last, so an
    unconditional run's draws are what they were before conditioning existed."""
    dev = generator.device
    z = torch.randn(2, batch, G.config.z_dim, generator=generator, device=dev)
    noise = [torch.randn(batch, 1, r, r, generator=generator, device=dev) for r in G.synthesis.layer_resolutions]
    mix = bool(torch.rand((), generator=generator, device=dev) < mixing_prob)
    cutoff = int(torch.randint(1, G.num_ws, (), generator=generator, device=dev))
    labels = None
    if G.config.num_classes:
        labels = label_pool[torch.randint(len(label_pool), (batch,), generator=generator, device=dev)]
    return {"z": z[0], "noise": noise, "mix_z": z[1] if mix else None, "cutoff": cutoff if mix else None,
            "labels": labels}


def update_w_avg(G: Generator, w: torch.Tensor, labels: torch.Tensor | None, beta: float = 0.995) -> None:
    """w_avg <- lerp(batch mean of w, w_avg, beta) (App. C), the batch being the global one under torchrun.
    A conditional G keeps one mean per class and moves those of the classes in the batch."""
    if labels is None:
        G.w_avg.copy_(distributed.all_mean(w.mean(0)).lerp(G.w_avg, beta))
        return
    onehot = F.one_hot(labels.long(), G.config.num_classes).to(w.dtype)  # (B, classes)
    sums, counts = distributed.all_mean(onehot.t() @ w), distributed.all_mean(onehot.sum(0))  # same ratio as sums
    mean = sums / counts.clamp(min=1e-8)[:, None]
    G.w_avg.copy_(torch.where((counts > 0)[:, None], mean.lerp(G.w_avg, beta), G.w_avg))


class StyleGANTask:
    """What gencli.training.loop.fit needs for StyleGAN. The loop's epochs are ticks of `tick_images`
    images (the unit of StyleGAN's training length, as in the official code).

    Networks: G (trained), D, G_ema (the moving average of G, used for every output). Every random draw
    of a step (z, noise, mixing, flips, fake labels, augmentations) comes from a generator seeded by
    (seed, step) for the global batch, of which each torchrun process takes its share: the run is the
    same whatever the number of processes, and resume needs no random state. A conditional config needs
    `labels` (N,) beside the images; `augment` is a DiffAugment policy ("" for none). `precision` "bf16"
    runs G's and D's forward passes under bf16 autocast; losses, R1 and w_avg stay fp32.
    """

    curves = ("train_d_loss", "train_g_loss")
    family = "stylegan"
    ema_rampup = 0.05  # EMA half-life at most 5% of the images seen so far (StyleGAN2-ADA): early samples move

    def __init__(self, config: StyleGANConfig, images: torch.Tensor, *, dataset: str, batch_size: int = 32,
                 lr: float = 0.001, r1_gamma: float = 0.0064, r1_every: int = 16, mixing_prob: float = 0.9,
                 ema_kimg: float = 10.0, tick_images: int = 4000, mirror: bool = False,
                 freeze_mapping: bool = False, freeze_d: int = 0, seed: int = 0, device="cpu",
                 labels: torch.Tensor | None = None, augment: str = "", precision: str = "fp32"):
        self.config, self.seed, self.device = config, seed, torch.device(device)
        self.world = distributed.world()
        self.images = images.to(self.device)  # uint8 (N, C, H, W)
        if config.num_classes and (labels is None or len(labels) != len(images)):
            raise GencliError("a conditional stylegan needs a class label for every training image")
        self.labels = labels.long().to(self.device) if config.num_classes else None  # (N,)
        self.augment, self.precision = parse_augment(augment), precision
        self.batch_size, self.r1_gamma, self.r1_every = batch_size, r1_gamma, r1_every
        self.mixing_prob, self.ema_kimg, self.mirror = mixing_prob, ema_kimg, mirror
        self.global_batch = batch_size * self.world.world_size
        self.steps_per_tick = max(1, round(tick_images / self.global_batch))
        self.G = Generator(config).to(self.device)
        self.D = Discriminator(config).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()  # the moving average of G: model.safetensors holds it
        requires_grad(self.G_ema, False)
        self.frozen_g, self.frozen_d = frozen_names(self.G, self.D, freeze_mapping, freeze_d)
        requires_grad(self.G, True, self.frozen_g)  # before wrapping: DDP leaves frozen parameters out
        requires_grad(self.D, True, self.frozen_d)
        self.G_train, self.D_train = distributed.wrap(self.G, self.device), distributed.wrap(self.D, self.device)
        # Frozen parameters are left out of the optimizers as well, so nothing can move them.
        # Lazy R1 (StyleGAN2 App. B): D is also stepped on every r1_every-th batch, so its Adam
        # learning rate and betas are rescaled by c = k / (k + 1) to keep the same effective values.
        c = r1_every / (r1_every + 1)
        self.g_opt = torch.optim.Adam([p for n, p in self.G.named_parameters() if n not in self.frozen_g],
                                      lr=lr, betas=(0.0, 0.99), eps=1e-8)
        self.d_opt = torch.optim.Adam([p for n, p in self.D.named_parameters() if n not in self.frozen_d],
                                      lr=lr * c, betas=(0.0, 0.99**c), eps=1e-8)
        self.step = 0
        # The grid after every tick: 64 seeds, or for a conditional G a row of 8 per class (as `sample`).
        self.sample_seeds = list(range(8 * config.num_classes if config.num_classes else 64))
        self.sample_labels = class_rows(len(self.sample_seeds), 8, config.num_classes)
        self.metadata: dict = {"dataset": dataset}
        self.last_r1 = 0.0  # logged on the steps between lazy R1 evaluations

    def load_source(self, state: dict) -> None:
        """Transfer learning: G, D and G_ema from another run's resume state (optimizers start afresh)."""
        for name, net in self.networks().items():
            try:
                net.load_state_dict(state["networks"][name])
            except (KeyError, RuntimeError):
                raise GencliError(f"--init-from: the source run's {name} does not match its stylegan config") from None

    # -- the Task protocol --

    def epoch_batches(self, tick: int) -> list[tuple[torch.Tensor, int]]:
        """(this process's image indices, global step number) for every step of tick `tick`."""
        first = (tick - 1) * self.steps_per_tick
        self.step = first
        batches = stream_batches(len(self.images), self.global_batch, self.steps_per_tick, self.seed, tick)
        return [(self._shard(idx), first + k + 1) for k, idx in enumerate(batches)]

    def _shard(self, inputs):
        return shard(inputs, self.world.rank, self.world.world_size)

    def _draw(self, generator: torch.Generator) -> dict:
        return self._shard(draw_latents(self.G, self.global_batch, self.mixing_prob, generator, self.labels))

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """DiffAugment before D, with fresh parameters per call (drawn for the global batch, sharded)."""
        if not self.augment:
            return x
        params = draw_augment(self.augment, self.global_batch, self.config.resolution, generator)
        return diff_augment(x, self._shard(params))

    def _autocast(self):
        return distributed.autocast(self.precision, self.device)

    def real_batch(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.images[idx.to(self.device)].float() / 127.5 - 1  # uint8 -> [-1, 1]
        if self.mirror:  # x-flips, as the paper does for FFHQ: doubles a small data set
            flip = torch.rand(self.global_batch, generator=generator, device=generator.device)
            flip = self._shard(flip < 0.5).to(self.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def train_step(self, batch: tuple[torch.Tensor, int]) -> dict[str, float]:
        idx, self.step = batch
        G, D = self.G, self.D
        rng = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + self.step)
        real = self.real_batch(idx, rng)
        real_labels = self.labels[idx.to(self.device)] if self.labels is not None else None
        logs = {}

        # --- D: logistic loss on real images and (detached) fakes, each augmented when asked ---
        requires_grad(G, False)
        requires_grad(D, True, self.frozen_d)
        with torch.no_grad(), self._autocast():
            latents = self._draw(rng)
            fake_labels = latents["labels"]
            fake = G(latents.pop("z"), **latents)
        with self._autocast():
            real_pred = self.D_train(self._augment(real, rng), real_labels).float()
            fake_pred = self.D_train(self._augment(fake, rng), fake_labels).float()
        d_loss = d_logistic_loss(real_pred, fake_pred)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        logs.update(d_loss=d_loss.item(), real_score=real_pred.mean().item(), fake_score=fake_pred.mean().item())

        # --- D: lazy R1 penalty, gamma / 2 * E||grad D(x)||^2, every r1_every batches, scaled up to match ---
        # (In fp32 whatever the precision: a gradient penalty is sensitive to rounding, and it runs rarely.)
        if self.r1_gamma > 0 and self.step % self.r1_every == 0:
            real.requires_grad_(True)  # the gradient is taken at the real image, through its augmentation
            real_pred = self.D_train(self._augment(real, rng), real_labels)
            r1 = d_r1_loss(real_pred, real)
            self.d_opt.zero_grad(set_to_none=True)
            # R1 is a gradient with respect to the input, which does not depend on D's last bias:
            # `0 * real_pred.mean()` gives that bias a zero gradient, since DistributedDataParallel expects
            # one for every parameter it wraps and would wait for it (rosinality's train.py does the same).
            (self.r1_gamma / 2 * r1 * self.r1_every + 0 * real_pred.mean()).backward()
            self.d_opt.step()
            self.last_r1 = r1.item()
        logs["r1"] = self.last_r1  # the last computed value

        # --- G: non-saturating loss through a frozen D (D itself, not its DDP wrapper: no D gradients) ---
        requires_grad(G, True, self.frozen_g)
        requires_grad(D, False)
        latents = self._draw(rng)
        fake_labels = latents["labels"]
        with self._autocast():
            images, w = self.G_train(latents.pop("z"), **latents, return_w=True)
            fake_pred = D(self._augment(images, rng), fake_labels).float()
        g_loss = g_nonsaturating_loss(fake_pred)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        logs["g_loss"] = g_loss.item()

        # --- running mean of w (beta 0.995, App. C) over the global batch (per class when conditional),
        # and the EMA generator ---
        with torch.no_grad():
            update_w_avg(G, w.detach().float(), fake_labels)
        images_seen = self.step * self.global_batch
        ema_images = min(self.ema_kimg * 1000, images_seen * self.ema_rampup)
        accumulate(self.G_ema, G, 0.5 ** (self.global_batch / max(ema_images, 1e-8)))
        return logs

    def end_epoch(self, tick: int, run_dir: Path, final: bool) -> dict[str, float]:
        save_grid(generate(self.G_ema, self.sample_seeds, labels=self.sample_labels),
                  Path(run_dir) / "samples" / f"epoch_{tick:03d}.png", nrow=8)
        kimg = self.step * self.global_batch / 1000
        self.metadata["kimg"] = kimg
        return {"kimg": kimg}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.g_opt, "D": self.d_opt}

    def exported_model(self) -> tuple[nn.Module, dict]:
        return self.G_ema, self.metadata

    def task_state(self) -> dict:
        return {"last_r1": self.last_r1}

    def load_task_state(self, state: dict) -> None:
        # Runs written before task_state existed kept the last R1 in the model metadata.
        legacy = self.metadata.pop("r1", 0.0)
        self.last_r1 = state.get("last_r1", legacy)


def auto_r1_gamma(resolution: int, batch_size: int) -> float:
    """StyleGAN2-ADA's heuristic gamma = 0.0002 res^2 / batch (Karras et al. 2020b): small for small images."""
    return 0.0002 * resolution**2 / batch_size


def source_checkpoint(init_from) -> tuple[Path, dict]:
    """--init-from: the source model's file and metadata. A file, a run folder, or a model name (found as
    `-c NAME` finds it: runs/NAME, an imported or a bundled model), holding a stylegan or stylegan2."""
    try:
        path = locate_checkpoint(None, str(init_from)).path
        meta = read_metadata(path)
    except GencliError as e:
        raise GencliError(f"--init-from: {e}") from None
    if meta["family"] not in ("stylegan", "stylegan2"):
        raise GencliError(f"--init-from: {path} holds a {meta['family']} model, not stylegan")
    return path, meta


def _source(path: Path) -> tuple[Path, dict]:
    """--init-from of gencli's StyleGAN: the source run's model file and its metadata."""
    path, meta = source_checkpoint(path)
    if meta["family"] != "stylegan":
        raise GencliError(f"--init-from: {path} holds a {meta['family']} network; train it with --arch stylegan2")
    return path, meta


def chosen_architecture(options: StyleGANTraining) -> str:
    """stylegan or stylegan2, for a new run: --arch, else that of the --init-from model, else stylegan."""
    held = source_checkpoint(options.init_from)[1]["family"] if options.init_from is not None else None
    if options.architecture is not None and held is not None and held != options.architecture:
        raise GencliError(f"--init-from holds a {held} network, but --arch is {options.architecture}; drop --arch")
    return options.architecture or held or "stylegan"


def stylegan_defaults(options: StyleGANTraining) -> StyleGANTraining:
    """The defaults of gencli's StyleGAN for what the options leave open; refuses what only StyleGAN2 takes."""
    only2 = [n for n in ("channel_base", "channel_max") if getattr(options, n) is not None]
    if only2:
        raise GencliError(f"--{only2[0].replace('_', '-')} is for --arch stylegan2; gencli's stylegan takes --widths")
    if options.augment.startswith("ada"):
        raise GencliError("--augment ada trains with the StyleGAN2 objective: add --arch stylegan2, or --init-from "
                          "a stylegan2 network (--augment alone is DiffAugment)")
    return dataclasses.replace(options, architecture="stylegan", lr=0.001 if options.lr is None else options.lr,
                               ema_kimg=10.0 if options.ema_kimg is None else options.ema_kimg)


def new_config(options: StyleGANTraining) -> StyleGANConfig:
    """The network a new run trains: the architecture options over the defaults (or, with --init-from,
    the source model's, which they must then equal)."""
    digits = options.data in IDX_DATASETS  # 1-channel digits (padded to 32 px) rather than a folder of images
    channels = 1 if digits else 3
    arch = options.arch()
    if options.init_from is not None:
        base = config_from_dict(StyleGANConfig, _source(options.init_from)[1]["config"])
        clash = [k for k, v in arch.items() if v != getattr(base, k)]
        if clash:
            raise GencliError(f"--init-from fixes the architecture; drop --{clash[0].replace('_', '-')}")
        if options.cond != bool(base.num_classes):
            raise GencliError(f"--init-from: the source model is {'' if base.num_classes else 'un'}conditional; "
                              f"{'add' if base.num_classes else 'drop'} --cond")
        values = asdict(base)
    else:
        res = arch.pop("resolution", 32)
        values = dict(resolution=res, widths=arch.pop("widths", None) or default_widths(res), **arch, channels=channels)
        # Defaults for digits (the measurements are in the README): tanh for their flat black background,
        # and one minibatch-stddev group per batch of up to 32 (StyleGAN2-ADA's CIFAR setting).
        values.setdefault("tanh_output", digits)
        values.setdefault("mbstd_group", min(options.batch_size, 32))
        if options.cond:
            values["num_classes"] = len(class_names(options.data, options.data_dir))
    if values["channels"] != channels:
        raise GencliError(f"the source model makes {values['channels']}-channel images, but {options.data} has {channels}")
    return StyleGANConfig(**values)


def load_data(options: StyleGANTraining, resolution: int, channels: int, num_classes: int, on_skip=None
              ) -> tuple[torch.Tensor, torch.Tensor | None, list[str], str]:
    """The training images at the network's resolution and channels: (images uint8 (N, C, res, res), labels
    (N,) or None, class names, one line saying what was done to fit them, "" for digits). Fewer images than a
    global batch are refused."""
    report: dict = {}
    labels, names = None, []
    if num_classes:
        images, labels, names = load_labelled_images(options.data, options.data_dir, resolution, on_skip)
        if len(names) != num_classes:
            raise GencliError(f"the model has {num_classes} classes, but {options.data} has {len(names)}")
    else:
        images = load_training_images(options.data, options.data_dir, resolution, on_skip, report=report)
    converted = ""
    if images.shape[1] != channels:
        converted = f"{images.shape[1]}-channel images made {channels}-channel for the network"
        images = match_channels(images, channels)
    batch = options.batch_size * distributed.world().world_size
    if len(images) < batch:
        raise GencliError(f"{options.data} holds {len(images)} images, fewer than one batch of {batch}: too few to "
                          "train on; add images or lower --batch-size")
    line = "" if options.data in IDX_DATASETS and not converted else describe_loading(
        len(images), str(options.data), resolution, report, converted)
    return images, labels, names, line


def run_task(job: TrainingPlan, shape: tuple[int, int, int], build, start_from, header=lambda task: (), *,
             progress: TrainingHooks | None = None, on_skip=None) -> Path:
    """The run both StyleGAN trainers share: hold the run folder, seed, read the data at the network's
    `shape` (resolution, channels, classes), make the task (`build(images, labels, device)`), start a new
    run from --init-from (`start_from(task, labels)`), write options.json and fit; returns model.safetensors'
    path. `header(task)`: the trainer's own lines above the progress. `on_skip(path, message)` hears of
    each unreadable image."""
    options, config, resume = job.options, job.config, job.resume
    with hold_run_dir(job.run_dir):  # refused at once if another training holds it
        dev = distributed.init(distributed.resolve_device(options.device))
        seed_everything(options.seed)
        images, labels, names, line = load_data(options, *shape, on_skip)
        if not resume:
            clear_run_outputs(job.run_dir)
        task = build(images, labels, dev)
        if labels is not None:
            task.metadata["class_names"] = names
        if options.init_from is not None and not resume:
            start_from(task, labels)
        write_options(job.run_dir, options_document(
            options, "stylegan", resolved=resolved(dev, job.precision, job.precision_reason, options.batch_size),
            data={"name": str(options.data), "images": len(images)}, config=asdict(config)))
        lines = (f"precision {job.precision} ({job.precision_reason})", *header(task), *((line,) if line else ()))
        return fit(task, job.run_dir, epochs=job.epochs, resume=resume, progress=progress, header=lines)


def run(job: TrainingPlan, *, progress: TrainingHooks | None = None, on_skip=None) -> Path:
    """Run a training of gencli's StyleGAN planned by gencli.training.stylegan_plan.plan (which sends a
    stylegan2 network to gencli.training.stylegan2.train); returns model.safetensors' path. With --cond the
    class names go into the checkpoint; with --init-from G, D and the EMA start from the source run's."""
    options, config = job.options, job.config

    def build(images, labels, dev):
        return StyleGANTask(config, images, dataset=options.data, batch_size=options.batch_size, lr=options.lr,
                            r1_gamma=options.r1_gamma, r1_every=options.r1_every, mixing_prob=options.mixing_prob,
                            ema_kimg=options.ema_kimg, tick_images=round(options.tick_kimg * 1000),
                            mirror=options.mirror, freeze_mapping=options.freeze_mapping, freeze_d=options.freeze_d,
                            seed=options.seed, device=dev, labels=labels, augment=options.augment,
                            precision=job.precision)

    def start_from(task, labels):
        task.load_source(load_resume(_source(options.init_from)[0].parent / RESUME_FILE))

    return run_task(job, (config.resolution, config.channels, config.num_classes), build, start_from,
                    progress=progress, on_skip=on_skip)
