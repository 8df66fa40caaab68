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
state dict (`model.1.weight` ... `model.26.bias`) loads by key (see gencli.weights.cyclegan).
Images are tensors in [-1, 1] (tanh output) inside the networks.

Networks only: training is in gencli.training.cyclegan, translation in gencli.inference.cyclegan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import ConfigError, GencliError

DIRECTIONS = ("a2b", "b2a")
UPSAMPLES = ("deconv", "resize")


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise GencliError(f"unknown direction {direction!r}; use a2b or b2a")
    return direction


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
    # How the decoder doubles the resolution: "deconv" (the paper's stride-2 transposed convs; official
    # weights, and checkpoints written before this field existed) or "resize" (nearest x2 then a 3x3 conv,
    # Odena et al. 2016, "Deconvolution and checkerboard artifacts": no uneven kernel overlap, no
    # checkerboard). `train cyclegan` uses resize for new models.
    upsample: str = "deconv"

    def __post_init__(self):
        if self.upsample not in UPSAMPLES:
            raise ConfigError("upsample", f"must be {' or '.join(UPSAMPLES)}, got {self.upsample!r}")


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


class ResizeConv(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 conv with reflection padding (Odena et al. 2016).
    Takes one slot of the generator's Sequential, so later layers keep the reference code's indices."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(F.interpolate(x, scale_factor=2, mode="nearest")))


class ResnetGenerator(nn.Module):
    """Johnson et al. (2016) style generator, CycleGAN Appendix 7.2: c7s1-64, d128, d256, R256 x n_blocks,
    u128, u64 (transposed convs, or `ResizeConv` with upsample="resize"), c7s1-3 with tanh.
    (B, 3, H, W) in [-1, 1] -> same shape; H and W multiples of 4."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, dropout: bool = False, upsample: str = "deconv"):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ConfigError("upsample", f"must be {' or '.join(UPSAMPLES)}, got {upsample!r}")
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), InstanceNorm(ngf), nn.ReLU(True)]
        for mult in (1, 2):  # encoder: two stride-2 convs, (B, ngf, H, W) -> (B, 4 ngf, H/4, W/4)
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       InstanceNorm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):  # decoder: two x2 upsamplings back to (B, ngf, H, W)
            up = (nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1)
                  if upsample == "deconv" else ResizeConv(ngf * mult, ngf * mult // 2))
            layers += [up, InstanceNorm(ngf * mult // 2), nn.ReLU(True)]
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
        make = lambda: ResnetGenerator(config.ngf, config.n_blocks, config.dropout, config.upsample)  # noqa: E731
        self.G_AB = make() if "a2b" in config.directions else None
        self.G_BA = make() if "b2a" in config.directions else None

    def generator(self, direction: str) -> ResnetGenerator:
        net = self.G_AB if check_direction(direction) == "a2b" else self.G_BA
        if net is None:
            raise GencliError(f"this model only translates {self.config.directions[0]}; it holds no {direction} "
                              "generator")
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
