"""Train the MNIST digit classifier that judges generated digits, and write it as a gencli checkpoint
(family "classifier", default assets/mnist_classifier.safetensors). Prints the test accuracy.

Adam with a one-cycle learning rate, random shifts of up to 2 px (the 32 px padding leaves room) as the
only augmentation; the test set is used once, at the end. Weights are stored in float16.

    OMP_NUM_THREADS=1 python benchmarks/train_classifier.py --data-dir ../shared/data [--epochs 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gencli.checkpoint import save_model
from gencli.data import load_idx_dataset
from gencli.models.classifier import ClassifierConfig, build, pad_to_32

ASSET = Path(__file__).resolve().parents[1] / "assets" / "mnist_classifier.safetensors"


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by up to `max_shift` px in x and y (zeros come in): (B, 1, 32, 32)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


@torch.no_grad()
def accuracy(net, images: torch.Tensor, labels: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(pad_to_32(b.float() / 255)).argmax(1) for b in images.split(1000)])
    return (pred == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ASSET)
    args = parser.parse_args()

    train, test = load_idx_dataset("mnist", args.data_dir)
    torch.manual_seed(args.seed)
    config = ClassifierConfig()
    net = build(config)
    opt = torch.optim.Adam(net.parameters(), args.lr)
    steps_per_epoch = -(-len(train) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch)
    x = pad_to_32(train.images.float() / 255)  # (60000, 1, 32, 32)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=g).split(args.batch_size):
            loss = F.cross_entropy(net(random_shift(x[idx], g)), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch}: train loss {total / len(x):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    # The asset stores float16 weights (half the size); measure the network as it will be loaded.
    net.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in net.state_dict().items()})
    acc = accuracy(net, test.images, test.labels)
    params = sum(p.numel() for p in net.parameters())
    save_model(args.out, "classifier", net, config, epoch=args.epochs, seed=args.seed, dtype=torch.float16,
               extra={"dataset": "mnist", "test_accuracy": round(acc, 4)})
    print(f"test accuracy {acc:.2%} on {len(test)} MNIST test images; {params} parameters, "
          f"{args.out.stat().st_size / 1e6:.2f} MB -> {args.out}")


if __name__ == "__main__":
    main()
