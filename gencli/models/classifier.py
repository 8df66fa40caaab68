"""A small MNIST digit classifier, the judge of generated digits (class spread, confidence, and whether
a conditional model draws the digit it was asked for).

A VGG-style CNN (Simonyan & Zisserman 2015) sized for 32 x 32 digits: two 3x3 convs per stage with
batch norm, 2x2 max pooling between stages, global average pooling and one linear layer (Lin et al.
2014, "Network in Network"), so the weights stay small (about 0.6 MB in float32).
Input: (B, 1, 32, 32) in [0, 1], white digits on black as in MNIST (28 px digits padded by 2 on each
side, the way the StyleGAN trains on them); `pad_to_32` does that padding for 28 px images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import GencliError


@dataclass
class ClassifierConfig:
    num_classes: int = 10  # digits 0-9
    widths: tuple[int, ...] = (32, 64, 128)  # channels of the stages at 32, 16 and 8 px
    dropout: float = 0.2  # before the final linear layer (training only)


def conv_bn(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


class DigitClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        stages, in_ch = [], 1
        for i, width in enumerate(config.widths):
            if i > 0:
                stages.append(nn.MaxPool2d(2))
            stages += [conv_bn(in_ch, width), conv_bn(width, width)]
            in_ch = width
        self.features = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(in_ch, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 32, 32) in [0, 1] -> logits (B, num_classes)."""
        h = self.features(x * 2 - 1)  # (B, C, 8, 8)
        return self.head(self.dropout(h.mean((2, 3))))  # global average pool -> (B, C) -> (B, classes)


def build(config: ClassifierConfig) -> DigitClassifier:
    return DigitClassifier(config)


def pad_to_32(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) -> (B, 1, 32, 32) with a black border; 32 px images pass unchanged."""
    if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[-2:]) not in ((28, 28), (32, 32)):
        raise GencliError(f"the digit classifier takes (N, 1, 28 or 32, same) images, got {tuple(x.shape)}")
    return F.pad(x, (2, 2, 2, 2)) if x.shape[-1] == 28 else x
