"""Quality of trained MNIST models: VAE/CVAE test loss, whether CVAE samples are the asked-for digit,
and which digits StyleGAN samples are.

The last two use an MNIST classifier (a small CNN, trained here on the MNIST training set and checked
on the test set; about 99% accurate): it labels 1000 CVAE prior samples per digit, and 1000 StyleGAN
samples (seeds 0-999, truncation 1, the 28 px centre of the 32 px image).

    python benchmarks/mnist_quality.py --data-dir ../shared/data [--vae CKPT] [--cvae CKPT] [--stylegan CKPT]

Without --vae/--cvae/--stylegan it measures the checkpoints the commands use by default (runs/, else
bundled).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from gencli import api
from gencli.data import load_idx_dataset
from gencli.inference.vae import prior_samples


def classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def train_classifier(train, test, epochs: int = 2) -> tuple[nn.Module, float]:
    torch.manual_seed(0)
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = train.images.float() / 255, train.labels
    for epoch in range(epochs):
        for idx in torch.randperm(len(y)).split(128):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(b.float() / 255).argmax(1) for b in test.images.split(1000)])
    return net, (pred == test.labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--vae", default=None)
    parser.add_argument("--cvae", default=None)
    parser.add_argument("--stylegan", default=None)
    parser.add_argument("--per-digit", type=int, default=1000)
    args = parser.parse_args()

    for family, path in (("vae", args.vae), ("cvae", args.cvae)):
        ckpt = api.find_checkpoint(family, path)
        m = api.evaluate(family, checkpoint=ckpt, data_dir=args.data_dir)
        print(f"{family} ({ckpt}): test loss {m['loss']:.2f} nats/image (BCE {m['bce']:.2f} + KL {m['kl']:.2f})")

    train, test = load_idx_dataset("mnist", args.data_dir)
    t0 = time.perf_counter()
    net, accuracy = train_classifier(train, test)
    print(f"classifier: {accuracy:.2%} test accuracy (trained in {time.perf_counter() - t0:.0f} s)")
    model, _ = api.open_model("sample", "cvae", api.find_checkpoint("cvae", args.cvae))
    agree = []
    for digit in range(10):
        seeds = list(range(digit * args.per_digit, (digit + 1) * args.per_digit))
        images = prior_samples(model, seeds, torch.full((len(seeds),), digit))
        with torch.no_grad():
            pred = net(images).argmax(1)
        agree.append((pred == digit).float().mean().item())
        print(f"  digit {digit}: {agree[-1]:.1%} of {len(seeds)} samples classified as {digit}")
    print(f"cvae samples agreeing with the requested label: {sum(agree) / 10:.2%}")

    from gencli.inference.stylegan import generate

    ckpt = api.find_checkpoint("stylegan", args.stylegan)
    G, _ = api.open_model("sample", "stylegan", ckpt)
    images = generate(G, list(range(10 * args.per_digit)))[:, :, 2:30, 2:30]  # MNIST was padded 28 -> 32
    with torch.no_grad():
        prob = torch.cat([net(b).softmax(1) for b in images.split(1000)])
        test_confidence = torch.cat([net(b.float() / 255).softmax(1) for b in test.images.split(1000)]).max(1).values
    share = torch.bincount(prob.argmax(1), minlength=10).float() / len(prob)
    print(f"stylegan ({ckpt}): {len(prob)} samples classified as " + ", ".join(f"{d}: {p:.1%}" for d, p in enumerate(share)))
    print(f"  classes with at least 5% of the samples: {(share >= 0.05).sum().item()} of 10; classifier confidence "
          f"above 0.9 on {(prob.max(1).values > 0.9).float().mean():.1%} of them "
          f"({(test_confidence > 0.9).float().mean():.1%} of the MNIST test images)")


if __name__ == "__main__":
    main()
