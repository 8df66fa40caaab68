"""Training NVIDIA's StyleGAN2 networks (gencli.models.stylegan2) with their objective: fine-tuning an
imported network (`train stylegan --init-from ffhq-res256`) or training one from scratch (`--arch stylegan2`).

The objective of StyleGAN2 (Karras et al. 2020a, "Analyzing and Improving the Image Quality of StyleGAN") as
StyleGAN2-ADA trains it (Karras et al. 2020b), so that a fine-tune goes on from where their training stopped:

- every step: G's non-saturating logistic loss softplus(-D(G(z))), then D's logistic loss softplus(D(G(z)))
  + softplus(-D(x)), each on its own draw of z (G first, as their phases run);
- lazy R1 (App. B): gamma / 2 * E||grad_x D(x)||^2 every r1_every (16) steps, weighted by r1_every, and D's
  Adam learning rate and betas rescaled by c = 16 / 17 to keep their effective values; gamma by their
  'auto' rule 0.0002 res^2 / batch;
- style mixing with probability 0.9 (a second z takes over the ws from a random layer on), per-pixel noise
  drawn afresh, and the running mean w_avg of w updated on every pass of G (decay w_avg_beta of the network);
- the G EMA with their half-life: ema_kimg = batch x 10 / 32 thousand images ('auto'), ramped up over the
  first images (half-life at most 5% of the images seen) from scratch and not ramped when fine-tuning, as
  their train.py does with --resume;
- Adam (lr 0.0025, betas (0, 0.99), eps 1e-8) as their 'auto' config below 1024 px.
- optional: Freeze-D (Mo et al. 2020) keeps D's first N blocks (from the image on) fixed; --freeze-mapping G's
  mapping network; DiffAugment (gencli.training.augment) with a fixed or an adaptive probability (ADA).

Left out: path-length regularization (and with it G's lazy-regularization correction; G's Adam takes the
learning rate and betas as given) and NVIDIA's fp16 layers (computed in fp32, as their code does off CUDA).

Reproducible as gencli.training.stylegan is: every random draw of a step comes from a generator seeded by
(seed, step) for the global batch, which each torchrun process shards; the ADA probability and its pending
statistics are part of the resume state, so a resumed run is bit-exact.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from gencli import distributed
from gencli.checkpoint import MODEL_FILE, RESUME_FILE, load_discriminator, load_model, load_resume
from gencli.data import IDX_DATASETS, class_names
from gencli.errors import ConfigError, GencliError
from gencli.inference.stylegan import class_rows
from gencli.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss
from gencli.models.stylegan2 import Discriminator, Generator, StyleGAN2Config
from gencli.registry import config_from_dict
from gencli.training.augment import ada_adjust, diff_augment, draw_augment
from gencli.training.common import accumulate, requires_grad
from gencli.training.loop import TrainingHooks, TrainingPlan
from gencli.training.options import StyleGANTraining, augment_ops
from gencli.training.stylegan import StyleGANTask, auto_r1_gamma, draw_latents, run_task, source_checkpoint

ADA_INTERVAL = 4  # steps between adjustments of p (theirs)


def frozen_names2(G: Generator, D: Discriminator, freeze_mapping: bool, freeze_d: int) -> tuple[frozenset, frozenset]:
    """Parameter names kept fixed: G's mapping network; D's first `freeze_d` blocks (blocks[0] reads the image
    and holds the from-RGB layer), Freeze-D as Mo et al. 2020 and NVIDIA's --freezed count them."""
    if not 0 <= freeze_d <= len(D.blocks):
        raise ConfigError("freeze_d", f"must be between 0 and {len(D.blocks)} (D's blocks), got {freeze_d}")
    g = {n for n, _ in G.named_parameters() if freeze_mapping and n.startswith("mapping.")}
    prefixes = tuple(f"blocks.{i}." for i in range(freeze_d))
    d = {n for n, _ in D.named_parameters() if prefixes and n.startswith(prefixes)}
    return frozenset(g), frozenset(d)


class GeneratorPass(nn.Module):
    """G as the training step runs it: f (and, style mixing, a second z from `cutoff` on), then g with the
    drawn noise; returns (images, the first z's w). A module, so that DistributedDataParallel can wrap it."""

    def __init__(self, G: Generator):
        super().__init__()
        self.G = G

    def forward(self, z, labels=None, noise=None, mix_z=None, cutoff=None):
        G = self.G
        w = G.mapping(z, labels)  # (B, w_dim)
        ws = G.broadcast(w)  # (B, num_ws, w_dim)
        if mix_z is not None:
            ws = torch.cat([ws[:, :cutoff], G.broadcast(G.mapping(mix_z, labels))[:, cutoff:]], 1)
        return G.synthesis(ws, noise=noise, noise_mode="random"), w


class StyleGAN2Task(StyleGANTask):
    """The StyleGAN2 objective (see the module docstring) in the Task protocol of gencli.training.loop.

    Shares with StyleGANTask the ticks, the batches, the real images (x-flips) and the sharding; the networks
    are NVIDIA's (G, D, G_ema), and model.safetensors holds G_ema with D beside it (a stylegan2 checkpoint
    that can be fine-tuned again). `augment`: a stored --augment ("ada..." for the adaptive probability).
    `ema_rampup`: None (fine-tuning) or the fraction of the images seen that bounds the half-life.
    """

    family = "stylegan2"

    def __init__(self, config: StyleGAN2Config, images: torch.Tensor, *, dataset: str, batch_size: int,
                 lr: float, r1_gamma: float, r1_every: int = 16, mixing_prob: float = 0.9, ema_kimg: float,
                 ema_rampup: float | None = 0.05, tick_images: int = 4000, mirror: bool = False,
                 freeze_mapping: bool = False, freeze_d: int = 0, seed: int = 0, device="cpu",
                 labels: torch.Tensor | None = None, augment: str = "", ada_target: float = 0.6,
                 ada_kimg: float = 500.0, precision: str = "fp32"):
        self.config, self.seed, self.device = config, seed, torch.device(device)
        self.world = distributed.world()
        self.images = images.to(self.device)  # uint8 (N, C, H, W)
        if config.c_dim and (labels is None or len(labels) != len(images)):
            raise GencliError("a conditional stylegan2 needs a class label for every training image")
        self.labels = labels.long().to(self.device) if config.c_dim else None
        self.ada, self.augment = augment_ops(augment)
        self.ada_p, self.ada_target, self.ada_kimg = 0.0, ada_target, ada_kimg
        self.ada_signs = [0.0, 0.0]  # sum of sign D(real) and their count since the last adjustment
        self.last_rt = 0.0  # r_t of the last adjustment
        self.precision = precision
        self.batch_size, self.r1_gamma, self.r1_every = batch_size, r1_gamma, r1_every
        self.mixing_prob, self.ema_kimg, self.ema_rampup, self.mirror = mixing_prob, ema_kimg, ema_rampup, mirror
        self.global_batch = batch_size * self.world.world_size
        self.steps_per_tick = max(1, round(tick_images / self.global_batch))
        self.G = Generator(config).to(self.device)
        self.D = Discriminator(config).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        requires_grad(self.G_ema, False)
        self.frozen_g, self.frozen_d = frozen_names2(self.G, self.D, freeze_mapping, freeze_d)
        requires_grad(self.G, True, self.frozen_g)
        requires_grad(self.D, True, self.frozen_d)
        self.G_train = distributed.wrap(GeneratorPass(self.G), self.device)
        self.D_train = distributed.wrap(self.D, self.device)
        c = r1_every / (r1_every + 1)  # lazy regularization: D's lr and betas as if R1 ran every step
        self.g_opt = torch.optim.Adam([p for n, p in self.G.named_parameters() if n not in self.frozen_g],
                                      lr=lr, betas=(0.0, 0.99), eps=1e-8)
        self.d_opt = torch.optim.Adam([p for n, p in self.D.named_parameters() if n not in self.frozen_d],
                                      lr=lr * c, betas=(0.0, 0.99**c), eps=1e-8)
        self.step = 0
        self.sample_seeds = list(range(8 * config.c_dim if config.c_dim else 64))
        self.sample_labels = class_rows(len(self.sample_seeds), 8, config.c_dim)
        self.metadata: dict = {"dataset": dataset, "network": "G_ema", "discriminator": True}
        self.last_r1 = 0.0
        self.curves = ({"losses": ("train_d_loss", "train_g_loss"), "ADA: augmentation probability p": (("ada_p", "p"),)}
                       if self.ada else ("train_d_loss", "train_g_loss"))

    # -- transfer learning --

    def load_checkpoint(self, path) -> None:
        """G, D and G_ema from a stylegan2 checkpoint: a gencli run's resume state beside it when there is one
        (G and G_ema as trained), else the file's generator (as G and G_ema) and its discriminator."""
        resume = path.parent / RESUME_FILE
        if path.name == MODEL_FILE and resume.is_file():
            state = load_resume(resume)
            if state.get("checkpoint", {}).get("family") == "stylegan2":
                return self.load_source(state)
        G, _ = load_model(path, "stylegan2")
        try:
            D, _ = load_discriminator(path)
        except GencliError as e:
            raise GencliError(f"--init-from: {e}; fine-tuning needs the discriminator (import the network from "
                              "NVIDIA's pickle, which holds it)") from None
        for net, source in ((self.G, G), (self.G_ema, G), (self.D, D)):
            net.load_state_dict(source.state_dict())

    # -- the step --

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """DiffAugment before D; with ADA each operation on each image with probability p."""
        if not self.augment:
            return x
        params = draw_augment(self.augment, self.global_batch, self.config.img_resolution, generator,
                              p=self.ada_p if self.ada else None)
        return diff_augment(x, self._shard(params))

    def _generate(self, generator: torch.Generator):
        """Fake images (this process's share), their labels, and the w_avg update of their pass."""
        latents = self._draw(generator)
        labels = latents["labels"]
        with self._autocast():
            images, w = self.G_train(latents["z"], labels, latents["noise"], latents["mix_z"], latents["cutoff"])
        with torch.no_grad():  # the running mean of w, over the global batch, as every pass of their G does
            beta = self.config.w_avg_beta
            self.G.w_avg.copy_(distributed.all_mean(w.detach().float().mean(0)).lerp(self.G.w_avg, beta))
        return images.float(), labels

    def _draw(self, generator: torch.Generator) -> dict:
        return self._shard(draw_latents(self.G, self.global_batch, self.mixing_prob, generator, self.labels))

    def _count_signs(self, real_pred: torch.Tensor) -> None:
        self.ada_signs[0] += float(distributed.all_mean(real_pred.detach().sign().sum()) * self.world.world_size)
        self.ada_signs[1] += len(real_pred) * self.world.world_size

    def train_step(self, batch: tuple[torch.Tensor, int]) -> dict[str, float]:
        idx, self.step = batch
        G, D = self.G, self.D
        rng = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + self.step)
        real = self.real_batch(idx, rng)
        real_labels = self.labels[idx.to(self.device)] if self.labels is not None else None
        logs = {}

        # --- G: non-saturating logistic loss through D (not D's DDP wrapper: no D gradients) ---
        requires_grad(G, True, self.frozen_g)
        requires_grad(D, False)
        images, labels = self._generate(rng)
        with self._autocast():
            fake_pred = D(self._augment(images, rng), labels).float()
        g_loss = g_nonsaturating_loss(fake_pred)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        logs["g_loss"] = g_loss.item()

        # --- D: logistic loss on fakes of a fresh draw and on the real images, each augmented when asked ---
        requires_grad(G, False)
        requires_grad(D, True, self.frozen_d)
        with torch.no_grad():
            images, labels = self._generate(rng)
        with self._autocast():
            fake_pred = self.D_train(self._augment(images, rng), labels).float()
            real_pred = self.D_train(self._augment(real, rng), real_labels).float()
        d_loss = d_logistic_loss(real_pred, fake_pred)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        self._count_signs(real_pred)
        logs.update(d_loss=d_loss.item(), real_score=real_pred.mean().item(), fake_score=fake_pred.mean().item())

        # --- D: lazy R1, gamma / 2 * E||grad D(x)||^2 every r1_every steps, weighted by r1_every (fp32) ---
        if self.r1_gamma > 0 and self.step % self.r1_every == 0:
            real = real.detach().requires_grad_(True)  # the gradient at the real image, through its augmentation
            real_pred = self.D_train(self._augment(real, rng), real_labels)
            r1 = d_r1_loss(real_pred, real)
            self.d_opt.zero_grad(set_to_none=True)
            # `0 * real_pred.mean()`: D's last bias gets a (zero) gradient, which DDP waits for.
            (self.r1_gamma / 2 * r1 * self.r1_every + 0 * real_pred.mean()).backward()
            self.d_opt.step()
            self._count_signs(real_pred)
            self.last_r1 = r1.item()
        logs["r1"] = self.last_r1

        # --- the G EMA: half-life ema_kimg, ramped up to a fraction of the images seen before this step ---
        ema_images = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_images = min(ema_images, (self.step - 1) * self.global_batch * self.ema_rampup)
        accumulate(self.G_ema, G, 0.5 ** (self.global_batch / max(ema_images, 1e-8)))

        # --- ADA: every ADA_INTERVAL steps, p moves by the sign of r_t - target ---
        if self.ada and self.step % ADA_INTERVAL == 0:
            rt = self.ada_signs[0] / max(self.ada_signs[1], 1)
            self.ada_p = ada_adjust(self.ada_p, rt, self.ada_target, self.global_batch * ADA_INTERVAL, self.ada_kimg)
            self.ada_signs = [0.0, 0.0]
            self.last_rt = rt
        if self.ada:
            logs["ada_p"] = self.ada_p
        return logs

    def end_epoch(self, tick: int, run_dir, final: bool) -> dict[str, float]:
        metrics = super().end_epoch(tick, run_dir, final)
        if self.ada:
            metrics.update(ada_p=self.ada_p, ada_rt=self.last_rt)
            self.metadata["ada_p"] = self.ada_p
        return metrics

    def exported_discriminator(self) -> nn.Module:
        return self.D

    def task_state(self) -> dict:
        return {"last_r1": self.last_r1, "ada_p": self.ada_p, "ada_signs": self.ada_signs, "ada_rt": self.last_rt}

    def load_task_state(self, state: dict) -> None:
        self.last_r1 = state.get("last_r1", 0.0)
        self.ada_p = state.get("ada_p", 0.0)
        self.ada_signs = list(state.get("ada_signs", [0.0, 0.0]))
        self.last_rt = state.get("ada_rt", 0.0)


# --- planning and running a StyleGAN2 training (called by gencli.training.stylegan's plan and train) ---

ONLY_STYLEGAN = ("widths", "style", "skip_rgb", "tanh_output")  # options of gencli's StyleGAN network alone


def new_config(options: StyleGANTraining) -> StyleGAN2Config:
    """The StyleGAN2 network a new run trains: the --init-from network's (which the architecture options
    must then leave alone), or from scratch NVIDIA's 'auto' network for the resolution (default 64 px):
    z and w 512, 2 mapping layers, channel_base 16384 (32768 from 512 px), channel_max 512, minibatch-std
    groups of min(batch, 4), or what --z-dim, --w-dim, --mapping-layers, --channel-base, --channel-max and
    --mbstd-group say."""
    given = {**options.arch(), **{n: getattr(options, n) for n in ("channel_base", "channel_max")
                                   if getattr(options, n) is not None}}
    if options.init_from is not None:
        path, meta = source_checkpoint(options.init_from)
        if given:
            raise GencliError(f"--init-from fixes the architecture; drop --{next(iter(given)).replace('_', '-')}")
        config = config_from_dict(StyleGAN2Config, meta["config"])
        if options.cond != bool(config.c_dim):
            raise GencliError(f"--init-from: the source network is {'' if config.c_dim else 'un'}conditional; "
                              f"{'add' if config.c_dim else 'drop'} --cond")
        return config
    other = [n for n in ONLY_STYLEGAN if n in given]
    if other:
        raise GencliError(f"--{other[0].replace('_', '-')} is for --arch stylegan; a stylegan2 takes --channel-base "
                          "and --channel-max")
    res = given.get("resolution", 64)
    values = dict(img_resolution=res, img_channels=1 if options.data in IDX_DATASETS else 3,
                  z_dim=given.get("z_dim", 512), w_dim=given.get("w_dim", 512),
                  mapping_layers=given.get("mapping_layers", 2),
                  channel_base=given.get("channel_base", 32768 if res >= 512 else 16384),
                  channel_max=given.get("channel_max", 512), mbstd_group_size=given.get("mbstd_group",
                                                                                       min(options.batch_size, 4)))
    values.update(d_channel_base=values["channel_base"], d_channel_max=values["channel_max"])
    if options.cond:
        values["c_dim"] = len(class_names(options.data, options.data_dir))
    try:
        return StyleGAN2Config(**values)
    except ConfigError as e:
        raise GencliError(f"bad stylegan2 network: {e}") from None


def resolve_options(options: StyleGANTraining, config: StyleGAN2Config) -> StyleGANTraining:
    """NVIDIA's 'auto' settings for what the options leave open: lr 0.0025 (0.002 from 1024 px), R1 gamma
    0.0002 res^2 / batch, EMA half-life batch x 10 / 32 kimg, ADA speed 500 kimg (100 when fine-tuning),
    x-flips for folders. Checks that the batch fills D's minibatch-std groups."""
    res, batch = config.img_resolution, options.batch_size
    group = min(config.mbstd_group_size or batch, batch)
    if config.mbstd_num_channels and batch % group:
        raise GencliError(f"--batch-size {batch} must be a multiple of D's minibatch-std group of {group} images")
    fine_tune = options.init_from is not None
    return dataclasses.replace(
        options, architecture="stylegan2",
        lr=(0.002 if res >= 1024 else 0.0025) if options.lr is None else options.lr,
        r1_gamma=auto_r1_gamma(res, batch) if options.r1_gamma is None else options.r1_gamma,
        ema_kimg=batch * 10 / 32 if options.ema_kimg is None else options.ema_kimg,
        ada_kimg=(100.0 if fine_tune else 500.0) if options.ada_kimg is None else options.ada_kimg,
        mirror=options.data not in IDX_DATASETS if options.mirror is None else options.mirror)


def with_config(options: StyleGANTraining, config: StyleGAN2Config) -> StyleGANTraining:
    """The options with the architecture fields as the StyleGAN2 network has them (what the run uses)."""
    return dataclasses.replace(options, resolution=config.img_resolution, z_dim=config.z_dim, w_dim=config.w_dim,
                               mapping_layers=config.mapping_layers, mbstd_group=config.mbstd_group_size,
                               channel_base=config.channel_base, channel_max=config.channel_max,
                               **{n: None for n in ONLY_STYLEGAN})


def train(job: TrainingPlan, *, progress: TrainingHooks | None = None, on_skip=None):
    """Run the planned StyleGAN2 training (gencli.training.stylegan_plan.plan); returns model.safetensors' path."""
    options, config = job.options, job.config

    def build(images, labels, dev):
        return StyleGAN2Task(config, images, dataset=options.data, batch_size=options.batch_size, lr=options.lr,
                             r1_gamma=options.r1_gamma, r1_every=options.r1_every, mixing_prob=options.mixing_prob,
                             ema_kimg=options.ema_kimg, ema_rampup=None if options.init_from is not None else 0.05,
                             tick_images=round(options.tick_kimg * 1000), mirror=options.mirror,
                             freeze_mapping=options.freeze_mapping, freeze_d=options.freeze_d, seed=options.seed,
                             device=dev, labels=labels, augment=options.augment, ada_target=options.ada_target,
                             ada_kimg=options.ada_kimg, precision=job.precision)

    def start_from(task, labels):
        source, meta = source_checkpoint(options.init_from)
        task.load_checkpoint(source)
        task.metadata["init_from"] = str(source)
        if "class_names" in meta["extra"] and labels is None:
            task.metadata["class_names"] = meta["extra"]["class_names"]

    def header(task):
        return (f"stylegan2: NVIDIA's objective, lr {options.lr:g}, R1 gamma {options.r1_gamma:g} every "
                f"{options.r1_every} steps, EMA half-life {options.ema_kimg:g} kimg"
                + (f", ADA target {options.ada_target:g} (p 0 to 1 in {options.ada_kimg:g} kimg)" if task.ada else ""),)

    return run_task(job, (config.img_resolution, config.img_channels, config.c_dim), build, start_from, header,
                    progress=progress, on_skip=on_skip)
