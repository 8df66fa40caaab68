"""Projection (gencli.inference.projection) measured on a network of ours and timed on this machine.

- recovery: images the bundled conditional MNIST StyleGAN (assets/stylegan.safetensors) drew itself from
  seeds 0..N-1 (digit k % 10, truncation 1, its noise maps fixed), projected with `--steps`: PSNR of the
  projection against the drawn image, the distance of the found w to the true one beside the distance of
  the start (the mean w) to it, and the final distance;
- real digits: the first N MNIST test digits (resized 28 -> 32 px as `gencli project` does), projected with
  their own label: PSNR and final distance;
- time: `--time-steps` steps of a freshly built network of gencli's default widths at 64 px and 256 px (RGB;
  time does not depend on training), extrapolated to 1000 steps.

Distances: pixel always; inception too where the Inception file is found (gencli.metrics.find_inception,
no download); lpips where the VGG16 file is found.

    OMP_NUM_THREADS=1 python benchmarks/projection.py --data-dir ../shared/data [--n 5] [--steps 1000]
        [--time-steps 50] [--stylegan CKPT] [--distances pixel,inception] [--json FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import torch

from gencli import perceptual
from gencli.checkpoint import load_model
from gencli.errors import GencliError
from gencli.images import to_unit
from gencli.inference import projection as proj
from gencli.inference.stylegan import seed_inputs
from gencli.models.stylegan import Generator, StyleGANConfig, default_widths

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def feature_nets(names: list[str]) -> dict:
    nets = {}
    for name in names:
        try:
            nets[name] = {"pixel": perceptual.PixelFeatures,
                          "inception": lambda: perceptual.load_inception_layers(download=False),
                          "lpips": lambda: perceptual.load_vgg16(download=False)}[name]()
        except GencliError as e:
            print(f"{name}: skipped ({e})", file=sys.stderr)
    return nets


def drawn(G, seed: int, label: int | None):
    z, noise = seed_inputs(G, [seed])
    labels = None if label is None else torch.tensor([label])
    with torch.no_grad():
        w = G.mapping(z, labels)
        image = to_unit(G.synthesis(G.broadcast(w), noise=noise))[0]
    return (image * 255).round(), w[0]


def mnist_test(data_dir: Path, n: int):
    from PIL import Image

    folder = data_dir / "mnist"
    images = gzip.open(folder / "t10k-images-idx3-ubyte.gz").read()[16:16 + 784 * n]
    labels = list(gzip.open(folder / "t10k-labels-idx1-ubyte.gz").read()[8:8 + n])
    out = []
    for k in range(n):
        pil = Image.frombytes("L", (28, 28), images[784 * k: 784 * (k + 1)]).resize((32, 32), Image.LANCZOS)
        out.append(torch.frombuffer(bytearray(pil.tobytes()), dtype=torch.uint8).view(1, 32, 32).float())
    return out, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--stylegan", type=Path, default=ASSETS / "stylegan.safetensors")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--time-steps", type=int, default=50)
    parser.add_argument("--distances", default="pixel,inception,lpips")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    G, _ = load_model(args.stylegan, "stylegan")
    nets = feature_nets(args.distances.split(","))
    classes = G.config.num_classes
    results = {"steps": args.steps, "recovery": {}, "real": {}, "time_1000_steps_s": {}}
    w_mean = {k: proj.w_stats(G, k if classes else None)[0] for k in range(max(classes, 1))}

    for name, net in nets.items():
        rows = []
        for seed in range(args.n):
            label = seed % 10 if classes else None
            target, w_true = drawn(G, seed, label)
            t0 = time.perf_counter()
            r = proj.project(G, target, net, steps=args.steps, label=label)
            rows.append({"seed": seed, "psnr": proj.psnr(r.image, target / 255), "distance": r.distance,
                         "w_error": float((r.ws[0] - w_true).norm()),
                         "start_w_error": float((w_mean[label or 0] - w_true).norm()),
                         "seconds": time.perf_counter() - t0})
            print(f"recovery {name} seed {seed}: " + "  ".join(f"{k} {v:.4g}" for k, v in rows[-1].items() if k != "seed"),
                  flush=True)
        results["recovery"][name] = rows
        real = []
        images, labels = mnist_test(args.data_dir, args.n)
        for k, (target, label) in enumerate(zip(images, labels)):
            r = proj.project(G, target, net, steps=args.steps, label=label if classes else None)
            real.append({"index": k, "label": label, "psnr": proj.psnr(r.image, target / 255), "distance": r.distance})
            print(f"real {name} test digit {k} ({label}): psnr {real[-1]['psnr']:.2f}  distance {r.distance:.4g}", flush=True)
        results["real"][name] = real

    for resolution in (64, 256):
        torch.manual_seed(0)
        big = Generator(StyleGANConfig(resolution=resolution, channels=3, widths=default_widths(resolution))).eval()
        target = torch.rand(3, resolution, resolution) * 255
        for name, net in nets.items():
            t0 = time.perf_counter()
            proj.project(big, target, net, steps=args.time_steps, w_avg_samples=1000)
            per_step = (time.perf_counter() - t0) / args.time_steps
            results["time_1000_steps_s"][f"{resolution}px_{name}"] = 1000 * per_step
            print(f"time {resolution} px {name}: {per_step * 1000:.1f} ms/step, {per_step * 1000:.0f} s per 1000 steps",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
