"""Training a CycleGAN: two generators against two PatchGAN discriminators, with cycle and identity
losses (Zhu et al. 2017; the objective and paper names are in gencli.models.cyclegan)."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from gencli import distributed
from gencli.data import UnpairedData, load_unpaired, resolve_data_path
from gencli.images import save_grid, to_unit
from gencli.losses import discriminator_loss, gan_loss, l1_loss
from gencli.models.cyclegan import CycleGAN, CycleGANConfig, PatchDiscriminator, build, init_weights
from gencli.errors import OptionError
from gencli.registry import config_from_dict, get_family
from gencli.runs import (check_more_to_do, clear_run_outputs, epochs_done, hold_run_dir, prepare_run_dir, resolved,
                         resumed_run, write_options)
from gencli.training.common import epoch_indices, requires_grad, resumed_options, seed_everything
from gencli.training.loop import TrainingHooks, TrainingPlan, fit
from gencli.training.option_files import options_document
from gencli.training.options import CycleGANTraining


def lr_factor(epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate in 1-based `epoch` of `epochs`: 1 for the first half (rounded
    up), then linear decay toward zero, as the reference 'linear' policy (100 + 100 epochs in the paper)."""
    constant = math.ceil(epochs / 2)
    return 1.0 - max(0, epoch - constant) / (epochs - constant + 1)


class ImagePool:
    """History of generated images (Shrivastava et al. 2017; CycleGAN Sec. 4): each fake shown to D is, with
    probability 1/2, swapped for one generated earlier, which damps oscillation. Not in the resume
    state (nor in the reference code's): it refills within `size` steps."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(()).item() < 0.5:
                i = int(torch.randint(len(self.images), ()).item())
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)


class CycleStep(nn.Module):
    """The generators' half of a training step as one forward, so that DistributedDataParallel can wrap it:
    G(A), F(G(A)), F(B), G(F(B)), and for the identity loss G(B), F(A)."""

    def __init__(self, model: CycleGAN):
        super().__init__()
        self.model = model

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor, identity: bool):
        G, F_ = self.model.G_AB, self.model.G_BA  # paper names: G: A -> B, F: B -> A
        fake_B, fake_A = G(real_A), F_(real_B)
        rec_A, rec_B = F_(fake_B), G(fake_A)
        same_B, same_A = (G(real_B), F_(real_A)) if identity else (None, None)
        return fake_B, rec_A, fake_A, rec_B, same_B, same_A



class CycleGANTask:
    """What the training loop (gencli.training.loop.fit) needs: two generators (the exported CycleGAN), two
    PatchGAN discriminators, one Adam for the generators and one for the discriminators (the reference
    code's grouping), image pools, and the learning-rate schedule."""

    family = "cyclegan"
    curves = {"generators G and F": (("train_G", "all"), ("train_G_adv", "adversarial"), ("train_G_cycle", "cycle"),
                                     ("train_G_identity", "identity")),
              "discriminators": (("train_D", "both"), ("train_D_A", "D_A"), ("train_D_B", "D_B"))}
    sample_headers = ("real A", "fake B", "rec A", "real B", "fake A", "rec B")  # the columns of sample_grid

    def __init__(self, config: CycleGANConfig, data: UnpairedData, *, epochs: int, lr: float = 2e-4,
                 batch_size: int = 1, seed: int = 0, device: torch.device | str = "cpu", precision: str = "fp32",
                 channels_last: bool = False, metadata: dict | None = None, annotate: bool = False):
        self.config, self.data, self.epochs, self.lr = config, data, epochs, lr
        self.annotate = annotate  # headers above the columns of the sample grids
        self.world = distributed.world()
        self.batch_size, self.seed, self.device = batch_size, seed, torch.device(device)
        self.precision = precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build(config)
        self.D_A, self.D_B = PatchDiscriminator(config.ndf), PatchDiscriminator(config.ndf)  # D_X, D_Y
        for net in (self.model, self.D_A, self.D_B):
            init_weights(net)
            net.to(self.device, memory_format=self.memory_format)
        # Under torchrun: DistributedDataParallel around what each half of a step trains.
        self.G_train = distributed.wrap(CycleStep(self.model), self.device)
        self.D_A_train, self.D_B_train = (distributed.wrap(d, self.device) for d in (self.D_A, self.D_B))
        betas = (0.5, 0.999)
        self.opt_G = torch.optim.Adam(self.model.parameters(), lr=lr, betas=betas)
        self.opt_D = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=lr, betas=betas)
        self.pool_A, self.pool_B = ImagePool(config.pool_size), ImagePool(config.pool_size)
        self.metadata = dict(metadata or {})

    # -- helpers --
    def _autocast(self):
        return distributed.autocast(self.precision, self.device)

    def _augment(self, images: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, L, L) -> S x S crops at (top, left), flipped left-right where flip is 1, in [-1, 1]."""
        size = self.config.image_size
        out = []
        for image, (top, left, flip) in zip(images, crops.tolist()):
            image = image[:, top : top + size, left : left + size]
            out.append(image.flip(-1) if flip else image)
        x = torch.stack(out).to(self.device, non_blocking=True).float() / 127.5 - 1
        return x.contiguous(memory_format=self.memory_format)

    # -- the Task protocol --
    def epoch_batches(self, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Called at the start of every epoch (also after a resume): set this epoch's learning rate.
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = self.lr * lr_factor(epoch, self.epochs)
        return epoch_indices(len(self.data.train_a), len(self.data.train_b), self.batch_size, self.seed, epoch,
                             crop_range=self.data.train_a.shape[-1] - self.config.image_size + 1,
                             rank=self.world.rank, world_size=self.world.world_size)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        c = self.config
        idx_a, idx_b, crops_a, crops_b = batch
        real_A, real_B = self._augment(self.data.train_a[idx_a], crops_a), self._augment(self.data.train_b[idx_b], crops_b)
        self.model.train()

        # --- generators: fool the (frozen) discriminators, keep cycles and identities ---
        for D in (self.D_A, self.D_B):
            requires_grad(D, False)
        with self._autocast():
            fake_B, rec_A, fake_A, rec_B, same_B, same_A = self.G_train(real_A, real_B, c.lambda_identity > 0)
            adv = (gan_loss(self.D_B(fake_B).float(), True, c.gan_mode)  # L_GAN(G, D_Y)
                   + gan_loss(self.D_A(fake_A).float(), True, c.gan_mode))  # L_GAN(F, D_X)
            cycle = c.lambda_cycle * (l1_loss(rec_A.float(), real_A) + l1_loss(rec_B.float(), real_B))
            identity = torch.zeros((), device=self.device)
            if c.lambda_identity > 0:  # G should leave B images alone, F should leave A images alone
                identity = c.lambda_cycle * c.lambda_identity * (
                    l1_loss(same_B.float(), real_B) + l1_loss(same_A.float(), real_A))
            loss_G = adv + cycle + identity
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()

        # --- discriminators: real vs generated images from the history pools ---
        for D in (self.D_A, self.D_B):
            requires_grad(D, True)
        with self._autocast():
            old_B, old_A = self.pool_B.query(fake_B), self.pool_A.query(fake_A)
            loss_D_B = discriminator_loss(self.D_B_train(real_B).float(), self.D_B_train(old_B).float(), c.gan_mode)
            loss_D_A = discriminator_loss(self.D_A_train(real_A).float(), self.D_A_train(old_A).float(), c.gan_mode)
        self.opt_D.zero_grad(set_to_none=True)
        (loss_D_A + loss_D_B).backward()
        self.opt_D.step()

        return {"G": loss_G.item(), "G_adv": adv.item(), "G_cycle": cycle.item(), "G_identity": identity.item(),
                "D": (loss_D_A + loss_D_B).item(), "D_A": loss_D_A.item(), "D_B": loss_D_B.item()}

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Rows of real A | G(A) | F(G(A)) | real B | F(B) | G(F(B)) for the fixed test images, in [0, 1]."""
        self.model.eval()
        G, F_ = self.model.G_AB, self.model.G_BA
        a = self.data.test_a.to(self.device).float() / 127.5 - 1
        b = self.data.test_b.to(self.device).float() / 127.5 - 1
        k = min(len(a), len(b))
        a, b = a[:k], b[:k]
        with self._autocast():
            fake_b, fake_a = G(a), F_(b)
            rec_a, rec_b = F_(fake_b), G(fake_a)
        cells = torch.stack([a, fake_b, rec_a, b, fake_a, rec_b], dim=1)  # (k, 6, 3, S, S)
        return to_unit(cells.flatten(0, 1)).cpu()

    def end_epoch(self, epoch: int, run_dir: Path, final: bool) -> dict[str, float]:
        save_grid(self.sample_grid(), Path(run_dir) / "samples" / f"epoch_{epoch:03d}.png", nrow=6,
                  col_labels=self.sample_headers if self.annotate else None)
        return {"lr": self.lr * lr_factor(epoch, self.epochs)}

    def networks(self) -> dict[str, nn.Module]:
        return {"generators": self.model, "D_A": self.D_A, "D_B": self.D_B}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def exported_model(self) -> tuple[nn.Module, dict]:
        return self.model, self.metadata


def plan(options: CycleGANTraining, *, run_dir: str | Path | None = None, resume: bool = False,
         overwrite: bool = False) -> TrainingPlan:
    """What `train` would do, resolved without writing anything: the data folder found (a name in the data
    directory or a folder), the run folder (default runs/<data name>) checked, on `resume` the run's
    options (with this call's length, device, precision, channels_last and annotate) and architecture,
    the device and the precision (`auto`: bf16 where the hardware has it)."""
    root = resolve_data_path(options.data, options.data_dir)
    folder = prepare_run_dir(root.name, run_dir, resume, overwrite)
    if resume:
        run = resumed_run(folder, "cyclegan")
        options = resumed_options(run, options, "cyclegan", folder)
        config = config_from_dict(CycleGANConfig, run.config)
        check_more_to_do(folder, options.epochs)
    else:
        arch = options.arch()
        arch.setdefault("n_blocks", 9 if arch.get("image_size", 256) >= 256 else 6)
        config = get_family("cyclegan").default_config(**arch)
        if options.load_size is not None and options.load_size < config.image_size:
            raise OptionError(f"--load-size must be at least --image-size ({config.image_size}), got {options.load_size}")
    dev = distributed.resolve_device(options.device)
    precision, reason = distributed.resolve_precision(options.precision, dev)
    return TrainingPlan("cyclegan", options.with_config(config), folder, resume, options.epochs,
                        epochs_done(folder) if resume else 0, str(dev), precision, reason, config)


def train(options: CycleGANTraining, *, run_dir: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, progress: TrainingHooks | None = None, on_skip=None) -> Path:
    """Train a CycleGAN as `options` say (see `plan`); returns model.safetensors' path. `on_skip(path,
    message)` hears of each unreadable image skipped."""
    job = plan(options, run_dir=run_dir, resume=resume, overwrite=overwrite)
    options, config = job.options, job.config
    root = resolve_data_path(options.data, options.data_dir)
    metadata = {"dataset": root.name, "max_images": options.max_images, "load_size": options.load_size}
    with hold_run_dir(job.run_dir):  # refused at once if another training holds it
        dev = distributed.init(distributed.resolve_device(options.device))
        seed_everything(options.seed)
        dataset = load_unpaired(root, config.image_size, max_images=options.max_images, seed=options.seed,
                                on_skip=on_skip, loaded_size=options.load_size)
        if not resume:
            clear_run_outputs(job.run_dir)
        task = CycleGANTask(config, dataset, epochs=options.epochs, lr=options.lr, batch_size=options.batch_size,
                            seed=options.seed, device=dev, precision=job.precision,
                            channels_last=options.channels_last, metadata=metadata, annotate=options.annotate)
        write_options(job.run_dir, options_document(
            options, "cyclegan", resolved=resolved(dev, job.precision, job.precision_reason, options.batch_size),
            data={"path": str(root), "images": [len(dataset.train_a), len(dataset.train_b)],
                  "load_size": dataset.train_a.shape[-1]},
            config=asdict(config)))
        return fit(task, job.run_dir, epochs=options.epochs, resume=resume, progress=progress,
                   header=(f"precision {job.precision} ({job.precision_reason})",))
