"""CycleGAN: unpaired image-to-image translation between two domains A and B.

Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks" (ICCV 2017), following the reference code junyanz/pytorch-CycleGAN-and-pix2pix.

Code -> paper -> reference code names (domain A is the paper's X, e.g. Monet; B is Y, photos):
    G_AB = G: X -> Y   (reference: G_A)        D_B = D_Y, judges B images (reference: D_A)
    G_BA = F: Y -> X   (reference: G_B)        D_A = D_X, judges A images (reference: D_B)
Objective (paper Eq. 3 plus the identity term of Sec. 5.2):
    L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda ||F(G(x)) - x||_1 + lambda ||G(F(y)) - y||_1
    + 0.5 lambda (||G(y) - y||_1 + ||F(x) - x||_1),    lambda = 10.

The generator's `model` Sequential has the reference ResnetGenerator's layer indices, so an official
state dict (`model.1.weight` ... `model.26.bias`) loads by key (see `convert_official_generator`).
Images are tensors in [-1, 1] (tanh output) inside this module; uint8 or [0, 1] only at its edges.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import GencliError
from gencli.losses import discriminator_loss, gan_loss, l1_loss

DIRECTIONS = ("a2b", "b2a")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class CycleGANConfig:
    image_size: int = 256  # training crop; translation works at any size
    ngf: int = 64  # generator channels after the first conv (x2, x4 after the stride-2 convs)
    n_blocks: int = 9  # residual blocks: 9 for 256 px, 6 for 128 px and below (paper, Appendix 7.2)
    dropout: bool = False  # dropout(0.5) inside the residual blocks; only some official weights use it
    ndf: int = 64  # discriminator channels of the first conv
    gan_mode: str = "lsgan"  # adversarial loss: lsgan (least squares, paper default) or vanilla (BCE)
    lambda_cycle: float = 10.0  # weight of the cycle-consistency L1 terms
    lambda_identity: float = 0.5  # identity L1 weight, as a fraction of lambda_cycle (0 turns it off)
    pool_size: int = 50  # generated images kept in the history shown to the discriminators
    directions: tuple[str, ...] = DIRECTIONS  # generators the exported model holds (imports may have one)


# --- networks ----------------------------------------------------------------------------------------

class InstanceNorm(nn.Module):
    """nn.InstanceNorm2d(affine=False, track_running_stats=False) that can also record its per-channel
    statistics and reuse them later. Tiles of one large image then share one normalisation, so they do
    not differ in colour (`shared_statistics`). No parameters: state dicts match nn.InstanceNorm2d's."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.mode = "normal"  # normal | record | shared
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean, var), each (N, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "normal":
            # fp32 statistics also under bf16/fp16 autocast: variances of large maps lose too much otherwise.
            return F.instance_norm(x.float(), eps=self.eps).to(x.dtype)
        if self.mode == "record":
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
            self.stats = (mean, var)
        mean, var = self.stats
        return ((x.float() - mean) * torch.rsqrt(var + self.eps)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ResnetBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), 3x3 convs with reflection padding (He et al. 2016)."""

    def __init__(self, dim: int, dropout: bool = False):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), InstanceNorm(dim), nn.ReLU(True)]
        if dropout:  # moves the second conv from conv_block.5 to conv_block.6, as in the reference code
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), InstanceNorm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Johnson et al. (2016) style generator, CycleGAN Appendix 7.2: c7s1-64, d128, d256, R256 x n_blocks,
    u128, u64, c7s1-3 with tanh. (B, 3, H, W) in [-1, 1] -> same shape; H and W multiples of 4."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), InstanceNorm(ngf), nn.ReLU(True)]
        for mult in (1, 2):  # encoder: two stride-2 convs, (B, ngf, H, W) -> (B, 4 ngf, H/4, W/4)
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       InstanceNorm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):  # decoder: two stride-2 transposed convs back to (B, ngf, H, W)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       InstanceNorm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (Isola et al. 2017; CycleGAN Appendix 7.2): C64-C128-C256-C512 4x4 convs, no norm on
    the first, LeakyReLU(0.2), then a 1-channel conv. (B, 3, H, W) -> (B, 1, H/8 - 2, W/8 - 2) patch scores,
    each seeing a 70x70 window of the input."""

    def __init__(self, ndf: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for n, stride in ((1, 2), (2, 2), (3, 1)):
            out = ndf * min(2**n, 8)
            layers += [nn.Conv2d(channels, out, 4, stride=stride, padding=1), InstanceNorm(out),
                       nn.LeakyReLU(0.2, True)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class CycleGAN(nn.Module):
    """The exported model: the generators G_AB (paper G) and G_BA (paper F). This is what
    model.safetensors holds; the discriminators live only in the resume state."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.config = config
        unknown = set(config.directions) - set(DIRECTIONS)
        if unknown or not config.directions:
            raise GencliError(f"bad cyclegan directions {config.directions}; use a2b and/or b2a")
        make = lambda: ResnetGenerator(config.ngf, config.n_blocks, config.dropout)  # noqa: E731
        self.G_AB = make() if "a2b" in config.directions else None
        self.G_BA = make() if "b2a" in config.directions else None

    def generator(self, direction: str) -> ResnetGenerator:
        if direction not in DIRECTIONS:
            raise GencliError(f"unknown direction {direction!r}; use a2b or b2a")
        net = self.G_AB if direction == "a2b" else self.G_BA
        if net is None:
            have = self.config.directions[0]
            raise GencliError(f"this model only translates {have}; it holds no {direction} generator "
                              f"(import the other direction's weights under the same --name)")
        return net

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return self.generator(direction)(x)


def build(config: CycleGANConfig) -> CycleGAN:
    return CycleGAN(config)


def init_weights(net: nn.Module, std: float = 0.02) -> None:
    """N(0, 0.02) conv weights and zero biases, as in the reference code's 'normal' init."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


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


# --- data ---------------------------------------------------------------------------------------------

@dataclass
class UnpairedData:
    """Two unpaired image folders held in memory as uint8 tensors.

    train_a/train_b: (N, 3, L, L) at L = int(1.12 x image_size) for random crops; test_a/test_b: a few
    fixed (K, 3, S, S) images (centre crops) for the sample grids.
    """

    name: str
    train_a: torch.Tensor
    train_b: torch.Tensor
    test_a: torch.Tensor
    test_b: torch.Tensor


def load_size(image_size: int) -> int:
    """Resize-then-crop size: 1.12 x the crop, e.g. 286 for 256 as in the reference code."""
    return int(image_size * 1.12)


def load_unpaired(root: Path, image_size: int, *, max_images: int | None = None, seed: int = 0,
                  n_samples: int = 4, on_skip: Callable[[Path, str], None] | None = None) -> UnpairedData:
    """Read root/{trainA,trainB} (and testA/testB for the sample grids, else the first train images).

    `max_images` keeps a random subset (drawn from `seed`) of each training folder.
    """
    from gencli.data import list_images, load_image_tensor

    root = Path(root)
    parts = {}
    for domain in ("A", "B"):
        folder = root / f"train{domain}"
        if not folder.is_dir():
            raise GencliError(f"{root} has no train{domain} folder; an unpaired data set needs "
                              "trainA and trainB (testA and testB optional)")
        files = list_images(folder)
        if max_images is not None and max_images < len(files):
            keep = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:max_images]
            files = [files[i] for i in sorted(keep.tolist())]
        parts[f"train_{domain.lower()}"] = load_image_tensor(files, load_size(image_size), on_skip=on_skip)
        test_folder = root / f"test{domain}"
        test_files = list_images(test_folder)[:n_samples] if test_folder.is_dir() and any(test_folder.iterdir()) \
            else files[:n_samples]
        parts[f"test_{domain.lower()}"] = load_image_tensor(test_files, image_size, on_skip=on_skip)
    return UnpairedData(root.name, **parts)


def epoch_indices(n_a: int, n_b: int, batch_size: int, seed: int, epoch: int, *, crop_range: int = 1,
                  rank: int = 0, world_size: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """One epoch of (A indices, B indices, A crops, B crops) batches over max(n_a, n_b) images, each domain
    in its own random order drawn from (seed, epoch) and repeated if it is the smaller one, as the reference
    unaligned loader. A crop is (top, left, flip) with offsets below `crop_range`, drawn with the order, so
    an epoch is the same on resume. Under torchrun rank r takes every world_size-th image of each batch of
    batch_size * world_size (the epoch trimmed to a multiple of world_size, so no rank waits for another)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    n = max(n_a, n_b)

    def order(size: int) -> torch.Tensor:
        return torch.cat([torch.randperm(size, generator=g) for _ in range(math.ceil(n / size))])[:n]

    def crops() -> torch.Tensor:
        return torch.cat([torch.randint(crop_range, (n, 2), generator=g), torch.randint(2, (n, 1), generator=g)], 1)

    columns = [order(n_a), order(n_b), crops(), crops()]
    keep = n - n % world_size
    batches = zip(*(c[:keep].split(batch_size * world_size) for c in columns))
    return [tuple(c[rank::world_size] for c in batch) for batch in batches]


class CycleStep(nn.Module):
    """The generators' half of a training step as one forward, so that DistributedDataParallel can wrap it:
    G(A), F(G(A)), F(B), G(F(B)), and for the identity loss G(B), F(A)."""

    def __init__(self, model: "CycleGAN"):
        super().__init__()
        self.model = model

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor, identity: bool):
        G, F_ = self.model.G_AB, self.model.G_BA  # paper names: G: A -> B, F: B -> A
        fake_B, fake_A = G(real_A), F_(real_B)
        rec_A, rec_B = F_(fake_B), G(fake_A)
        same_B, same_A = (G(real_B), F_(real_A)) if identity else (None, None)
        return fake_B, rec_A, fake_A, rec_B, same_B, same_A


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x.float() + 1) / 2


# --- training -------------------------------------------------------------------------------------------

class CycleGANTask:
    """What the training loop (gencli.training.fit) needs: two generators (the exported CycleGAN), two
    PatchGAN discriminators, one Adam for the generators and one for the discriminators (the reference
    code's grouping), image pools, and the learning-rate schedule."""

    family = "cyclegan"
    curves = ("train_G", "train_D")

    def __init__(self, config: CycleGANConfig, data: UnpairedData, *, epochs: int, lr: float = 2e-4,
                 batch_size: int = 1, seed: int = 0, device: torch.device | str = "cpu", precision: str = "fp32",
                 channels_last: bool = False, extra: dict | None = None):
        from gencli import distributed

        self.config, self.data, self.epochs, self.lr = config, data, epochs, lr
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
        self.extra = dict(extra or {})

    # -- helpers --
    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

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
        requires_grad([self.D_A, self.D_B], False)
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
        requires_grad([self.D_A, self.D_B], True)
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
        from gencli.images import save_grid

        save_grid(self.sample_grid(), Path(run_dir) / "samples" / f"epoch_{epoch:03d}.png", nrow=6)
        return {"lr": self.lr * lr_factor(epoch, self.epochs)}

    def networks(self) -> dict[str, nn.Module]:
        return {"generators": self.model, "D_A": self.D_A, "D_B": self.D_B}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def export(self) -> tuple[nn.Module, dict]:
        return self.model, self.extra


# --- translation ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def shared_statistics(generator: nn.Module, reference: torch.Tensor):
    """Within the block, every InstanceNorm of `generator` normalises with the statistics it saw on
    `reference` (B=1, already padded to a multiple of 4) instead of those of its current input."""
    norms = [m for m in generator.modules() if isinstance(m, InstanceNorm)]
    try:
        for m in norms:
            m.mode = "record"
        generator(reference)
        for m in norms:
            m.mode = "shared"
        yield
    finally:
        for m in norms:
            m.mode, m.stats = "normal", None


def pad_to_multiple(x: torch.Tensor, multiple: int = 4, minimum: int = 8) -> torch.Tensor:
    """Pad right and bottom so H and W are multiples of `multiple` and at least `minimum` (the generator
    needs 2 x 2 pixels at its 1/4 resolution); reflection, or replicate where the image is too small."""
    h, w = x.shape[-2:]
    ph, pw = max(-h % multiple, minimum - h), max(-w % multiple, minimum - w)
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _ramp(length: int, start: int, total: int, overlap: int, margin: int) -> torch.Tensor:
    """Blend weights along one axis of a tile covering [start, start + length) of `total` pixels.

    Near a tile edge that is inside the image, outputs lack context: the `margin` pixels there get (almost)
    no weight, and the next `overlap - 2 margin` pixels ramp up linearly. Edges on the image border keep
    full weight. Weights stay above zero, so the normalised sum is defined everywhere."""
    i = torch.arange(length, dtype=torch.float32)
    far = torch.full((length,), float(length))
    d_lo = i if start > 0 else far
    d_hi = (length - 1 - i) if start + length < total else far
    d = torch.minimum(d_lo, d_hi)
    ramp = max(overlap - 2 * margin, 1)
    return ((d - margin + 1) / ramp).clamp(1e-3, 1.0)


def _starts(total: int, tile: int, step: int) -> list[int]:
    if total <= tile:
        return [0]
    starts = list(range(0, total - tile, step))
    return starts + [total - tile]


@torch.no_grad()
def translate_tensor(generator: nn.Module, x: torch.Tensor, *, tile: int = 512, overlap: int = 128,
                     margin: int = 32, whole_max_pixels: int = 1024 * 1024, stats_size: int = 1024,
                     precision: str = "fp32") -> torch.Tensor:
    """Translate one image x (1, 3, H, W) in [-1, 1] of any size; returns (1, 3, H, W) in [-1, 1] on the CPU.

    Images up to `whole_max_pixels` go through in one piece (padded to a multiple of 4, cropped back).
    Larger ones go in `tile` x `tile` windows overlapping by `overlap` pixels, whose outer `margin` pixels
    (short of context) are dropped and the rest blended with linear ramps, so memory stays bounded.
    Instance norm would give each tile its own colours, so all tiles share the statistics of a copy of
    the image downscaled to at most `stats_size` on its long side (one extra pass at that size).
    """
    device = next(generator.parameters()).device
    autocast = contextlib.nullcontext() if precision == "fp32" else torch.autocast(
        device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    h, w = x.shape[-2:]
    padded = pad_to_multiple(x)
    H, W = padded.shape[-2:]
    with autocast:
        if H * W <= whole_max_pixels:
            return generator(padded.to(device)).float()[..., :h, :w].cpu()

        tile = max(8, tile - tile % 4)
        overlap = min(overlap, tile // 2)
        overlap -= overlap % 4
        margin = min(margin, overlap // 4)
        scale = min(1.0, stats_size / max(H, W))
        reference = padded if scale == 1.0 else F.interpolate(
            padded, size=(max(4, round(H * scale)), max(4, round(W * scale))), mode="bilinear", antialias=True,
            align_corners=False)
        reference = pad_to_multiple(reference)
        out = torch.zeros(1, 3, H, W)
        weight = torch.zeros(1, 1, H, W)
        with shared_statistics(generator, reference.to(device)):
            th, tw = min(tile, H), min(tile, W)
            for top in _starts(H, th, tile - overlap):
                for left in _starts(W, tw, tile - overlap):
                    y = generator(padded[..., top : top + th, left : left + tw].to(device)).float().cpu()
                    wy = _ramp(th, top, H, overlap, margin)
                    wx = _ramp(tw, left, W, overlap, margin)
                    mask = (wy[:, None] * wx[None, :])[None, None]
                    out[..., top : top + th, left : left + tw] += y * mask
                    weight[..., top : top + th, left : left + tw] += mask
        return (out / weight)[..., :h, :w]


def image_to_tensor(image) -> torch.Tensor:
    """PIL RGB image -> (1, 3, H, W) in [-1, 1]."""
    import numpy as np

    array = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
    return array.permute(2, 0, 1)[None].float() / 127.5 - 1


def resize_short_side(image, size: int):
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


# --- using a trained model: names, checkpoints, files ------------------------------------------------------

def models_dir() -> Path:
    """Where imported pretrained models live: $GENCLI_MODELS_DIR, else <cache>/gencli/models
    (<cache> is $XDG_CACHE_HOME or ~/.cache)."""
    import os

    if os.environ.get("GENCLI_MODELS_DIR"):
        return Path(os.environ["GENCLI_MODELS_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "gencli" / "models"


def find_model(name_or_path: str | Path) -> Path:
    """A checkpoint file (or a run folder holding one), else NAME as runs/NAME/model.safetensors, else an
    imported model <models_dir>/NAME.safetensors, else the bundled assets/NAME.safetensors."""
    from gencli.api import RUNS_DIR, bundled_checkpoint
    from gencli.checkpoint import MODEL_FILE

    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir() and (path / MODEL_FILE).is_file():
        return path / MODEL_FILE
    name = str(name_or_path)
    if path.suffix in (".safetensors", ".pth", ".pt") or "/" in name or "\\" in name:
        raise GencliError(f"checkpoint not found: {name}")
    for candidate in (RUNS_DIR / name / MODEL_FILE, models_dir() / f"{name}.safetensors"):
        if candidate.is_file():
            return candidate
    bundled = bundled_checkpoint(name)
    if bundled is not None:
        return bundled
    raise GencliError(f"no model named {name!r}: not in {RUNS_DIR / name}, not imported into {models_dir()}, "
                      f"not bundled; train it (gencli train cyclegan --data {name}), or fetch official weights "
                      f"(gencli download-weights NAME)")


def load_translator(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """(CycleGAN model in eval mode, metadata) for a name or checkpoint; other families are refused."""
    from gencli.checkpoint import load_model, read_metadata
    from gencli.registry import require_command

    path = find_model(name_or_path)
    if path.suffix in (".pth", ".pt"):
        raise GencliError(f"{path} is a PyTorch file; convert it first: "
                          f"gencli import-weights cyclegan {path} --name NAME")
    family = read_metadata(path)["family"]
    require_command(family, "translate")  # e.g. a VAE checkpoint: "translate does not apply to vae models"
    model, meta = load_model(path, "cyclegan", device)
    meta["path"] = path
    return model, meta


def collect_inputs(inputs: list[Path]) -> list[tuple[Path, Path | None]]:
    """(image file, folder it came from or None) for each input file and each image file of each input folder."""
    from gencli.data import list_images

    jobs: list[tuple[Path, Path | None]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            jobs += [(p, item) for p in list_images(item)]
        elif item.is_file():
            jobs.append((item, None))
        else:
            raise GencliError(f"input not found: {item}")
    if not jobs:
        raise GencliError("no input images")
    return jobs


def output_paths(jobs: list[tuple[Path, Path | None]], out: Path | None, direction: str) -> list[Path]:
    """One input file: `out` (a file name, or a folder to write into), default ./STEM_DIRECTION.png.
    Otherwise `out` is a folder (default ./FOLDER_DIRECTION for one input folder, else ./translated_DIRECTION)
    receiving STEM.png for each input."""
    if len(jobs) == 1 and jobs[0][1] is None:
        src = jobs[0][0]
        if out is None:
            return [Path(f"{src.stem}_{direction}.png")]
        return [out / f"{src.stem}.png"] if out.is_dir() else [out]
    folders = {folder for _, folder in jobs}
    if out is None:
        only = next(iter(folders)) if len(folders) == 1 else None
        out = Path(f"{only.resolve().name}_{direction}" if only is not None else f"translated_{direction}")
    if out.exists() and not out.is_dir():
        raise GencliError(f"{out} is a file; several images need an output folder")
    paths, seen = [], set()
    for src, _ in jobs:
        target = out / f"{src.stem}.png"
        if target in seen:  # a.jpg and a.png in one folder
            target = out / f"{src.name}.png"
        seen.add(target)
        paths.append(target)
    return paths


def translate_files(source: str | Path, inputs: list[Path], *, out: Path | None = None, direction: str = "a2b",
                    size: int | None = None, device: str = "cpu", precision: str = "fp32", tile: int = 512,
                    on_skip: Callable[[Path, str], None] | None = None) -> list[Path]:
    """Translate image files and folders with a cyclegan model; returns the written paths.

    An unreadable file given on its own is an error; inside a folder it is skipped via `on_skip`.
    """
    from gencli.data import open_rgb
    from gencli.images import check_writable, save_image
    from gencli.training import resolve_device

    if direction not in DIRECTIONS:
        raise GencliError(f"unknown direction {direction!r}; use a2b or b2a")
    if precision not in PRECISIONS:
        raise GencliError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if size is not None and size < 4:
        raise GencliError(f"--size must be at least 4, got {size}")
    if tile < 64:
        raise GencliError(f"--tile must be at least 64, got {tile}")
    dev = resolve_device(device)
    if precision == "fp16" and dev.type == "cpu":
        raise GencliError("fp16 needs a CUDA GPU; on the CPU use --precision bf16")
    model, _ = load_translator(source, dev)
    generator = model.generator(direction)
    jobs = collect_inputs(inputs)
    targets = output_paths(jobs, None if out is None else Path(out), direction)
    for target in targets[:1]:
        check_writable(target)
    written = []
    for (src, folder), target in zip(jobs, targets):
        try:
            image = open_rgb(src)
        except GencliError as e:
            if folder is None:
                raise
            if on_skip:
                on_skip(src, str(e))
            continue
        if size is not None:
            image = resize_short_side(image, size)
        y = translate_tensor(generator, image_to_tensor(image), tile=tile, precision=precision)
        written.append(save_image(to_unit(y[0]), target))
    if not written:
        raise GencliError("none of the input files could be read as images")
    return written


# --- training entry point ----------------------------------------------------------------------------------

def train(data: str | Path, *, data_dir: str | Path | None = None, out: str | Path | None = None, epochs: int = 200,
          image_size: int = 256, ngf: int = 64, n_blocks: int = 9, ndf: int = 64, gan_mode: str = "lsgan",
          lambda_cycle: float = 10.0, lambda_identity: float = 0.5, lr: float = 2e-4, batch_size: int = 1,
          max_images: int | None = None, seed: int = 0, device: str = "auto", precision: str = "fp32",
          channels_last: bool = False, resume: bool = False, overwrite: bool = False, progress=None,
          on_skip: Callable[[Path, str], None] | None = None) -> Path:
    """Train a CycleGAN on the unpaired folders of `data` (a name in the data directory or a folder);
    returns runs/<data name>/model.safetensors (or the one in `out`). With `resume`, the architecture,
    seed and image subset come from the run being continued."""
    from gencli import distributed
    from gencli.api import check_positive, prepare_run_dir, write_options
    from gencli.checkpoint import MODEL_FILE, read_metadata
    from gencli.data import resolve_data_path
    from gencli.training import fit, resolve_device, seed_everything

    check_positive(epochs=epochs, image_size=image_size, ngf=ngf, ndf=ndf, lr=lr, batch_size=batch_size,
                   n_blocks=n_blocks)
    if max_images is not None and max_images <= 0:
        raise GencliError(f"--max-images must be positive, got {max_images}")
    if image_size % 4 or image_size < 32:
        raise GencliError(f"--image-size must be a multiple of 4 and at least 32, got {image_size}")
    if gan_mode not in ("lsgan", "vanilla"):
        raise GencliError(f"unknown --gan-mode {gan_mode!r}; use lsgan or vanilla")
    if precision == "fp16":  # would need loss scaling; bf16 has fp32's range and needs none
        raise GencliError("training supports --precision fp32 or bf16 (fp16 is for translate)")
    if precision not in ("fp32", "bf16"):
        raise GencliError(f"unknown --precision {precision!r}; use fp32 or bf16")
    root = resolve_data_path(data, data_dir)
    run_dir = prepare_run_dir(root.name, out, resume, overwrite)
    dev = distributed.init(resolve_device(device))
    config = CycleGANConfig(image_size=image_size, ngf=ngf, n_blocks=n_blocks, ndf=ndf, gan_mode=gan_mode,
                            lambda_cycle=lambda_cycle, lambda_identity=lambda_identity)
    extra = {"dataset": root.name, "max_images": max_images}
    if resume:  # architecture, seed and image subset from the run being continued, not from the flags
        if not (run_dir / MODEL_FILE).is_file():
            raise GencliError(f"nothing to resume in {run_dir}: it holds no {MODEL_FILE}")
        meta = read_metadata(run_dir / MODEL_FILE)
        if meta["family"] != "cyclegan":
            raise GencliError(f"{run_dir} holds a {meta['family']} run, not cyclegan")
        from gencli.registry import config_from_dict

        config = config_from_dict(CycleGANConfig, meta["config"])
        seed, extra = meta["seed"], meta["extra"]
        max_images = extra.get("max_images")
    seed_everything(seed)
    dataset = load_unpaired(root, config.image_size, max_images=max_images, seed=seed, on_skip=on_skip)
    task = CycleGANTask(config, dataset, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=dev,
                        precision=precision, channels_last=channels_last, extra=extra)
    write_options(run_dir, {"family": "cyclegan", "data": str(root), "epochs": epochs, "lr": lr,
                            "batch_size": batch_size, "max_images": max_images,
                            "images": [len(dataset.train_a), len(dataset.train_b)], "seed": seed, "device": str(dev),
                            "precision": precision, "channels_last": channels_last, "config": asdict(config)})
    return fit(task, run_dir, epochs=epochs, resume=resume, progress=progress)


def export_fp16(checkpoint: str | Path, out: str | Path) -> Path:
    """Write a cyclegan checkpoint's generators as float16 (half the size), e.g. for the bundled
    assets/monet2photo.safetensors; load_model casts them back to float32."""
    from gencli.checkpoint import load_model, save_model

    model, meta = load_model(find_model(checkpoint), "cyclegan")
    return save_model(Path(out), "cyclegan", model, model.config, epoch=meta["epoch"], seed=meta["seed"],
                      extra=meta["extra"], dtype=torch.float16)


# --- official pretrained weights ---------------------------------------------------------------------------

_DROPPED = ("running_mean", "running_var", "num_batches_tracked")


def convert_official_generator(state: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    """A ResnetGenerator state dict of junyanz/pytorch-CycleGAN-and-pix2pix -> (config fields, state dict
    of our ResnetGenerator). Instance-norm running statistics that old official files carry are dropped;
    the dropout layout (second conv at conv_block.6) and any number of blocks (6 or 9) are recognised."""
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GencliError("not a CycleGAN generator: expected a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()
             if isinstance(k, str) and not k.endswith(_DROPPED)}
    if "model.1.weight" not in state:
        raise GencliError("not a CycleGAN ResNet generator: no model.1.weight (the first 7x7 conv)")
    first = state["model.1.weight"]
    if first.ndim != 4 or tuple(first.shape[1:]) != (3, 7, 7):
        raise GencliError(f"not a CycleGAN RGB generator: model.1.weight has shape {tuple(first.shape)}")
    blocks = {int(k.split(".")[1]) for k in state if ".conv_block." in k}
    dropout = any(".conv_block.6." in k for k in state)
    fields = {"ngf": int(first.shape[0]), "n_blocks": len(blocks), "dropout": dropout}
    reference = ResnetGenerator(**fields).state_dict()
    if set(state) != set(reference) or any(state[k].shape != v.shape for k, v in reference.items()):
        missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else "shapes differ")
        raise GencliError(f"not a CycleGAN ResNet generator of the official layout ({detail})")
    return fields, {k: v.float() for k, v in state.items()}


def import_official(pth: str | Path, *, name: str | None = None, direction: str = "a2b", out: str | Path | None = None,
                    overwrite: bool = False) -> Path:
    """Convert an official generator .pth into a cyclegan checkpoint holding that one direction, written to
    `out` or <models_dir>/NAME.safetensors. When that file already holds the other direction of the same
    architecture, the two are merged into one model (e.g. monet2photo a2b + style_monet b2a)."""
    from gencli.checkpoint import load_model, read_metadata, save_model

    pth = Path(pth)
    if direction not in DIRECTIONS:
        raise GencliError(f"unknown direction {direction!r}; use a2b or b2a")
    if not pth.is_file():
        raise GencliError(f"file not found: {pth}")
    name = name or pth.stem
    target = Path(out) if out else models_dir() / f"{name}.safetensors"
    try:
        state = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GencliError(f"{pth} is not a PyTorch state dict that can be loaded safely "
                          f"({e.__class__.__name__})") from None
    fields, weights = convert_official_generator(state)

    directions, generators = [direction], {direction: weights}
    sources = {direction: pth.name}
    if target.is_file():
        meta = read_metadata(target)
        old = meta["config"]
        same_arch = meta["family"] == "cyclegan" and all(old.get(k) == v for k, v in fields.items())
        if direction in old.get("directions", []) or not same_arch:
            if not overwrite:
                raise GencliError(f"{target} already exists; pass --overwrite to replace it")
        else:  # keep the other direction already imported under this name
            model, _ = load_model(target, "cyclegan")
            for d in old["directions"]:
                generators[d] = model.generator(d).state_dict()
            sources = {**meta["extra"].get("imported_from", {}), **sources}
            directions = [d for d in DIRECTIONS if d in generators]
    config = CycleGANConfig(**fields, directions=tuple(d for d in DIRECTIONS if d in directions))
    model = build(config)
    for d, sd in generators.items():
        model.generator(d).load_state_dict(sd)
    extra = {"dataset": name, "source": "junyanz/pytorch-CycleGAN-and-pix2pix", "imported_from": sources}
    return save_model(target, "cyclegan", model, config, epoch=0, seed=0, extra=extra)
