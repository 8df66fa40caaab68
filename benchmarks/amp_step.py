"""One training step per family on CUDA, in fp32 and with mixed precision (autocast), for a GPU at hand.

Each family's task (the code `gencli train` runs) is built on random uint8 data of the paper-like size
below, warmed up, and then timed over a few steps, in fp32 and under torch.autocast with bf16 (or fp16
with --dtype fp16; the losses are computed in fp32 either way). Prints milliseconds per step, images
per second, peak GPU memory, and whether the losses stayed finite.

    python benchmarks/amp_step.py                   # every family on cuda
    python benchmarks/amp_step.py --family stylegan --steps 20
    python benchmarks/amp_step.py --device cpu --small   # a quick check of the script without a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import torch


def vae_task(family: str, device, small: bool):
    from gencli.data import ImageSet
    from gencli.models.vae import VAEConfig
    from gencli.training.vae import VAETask

    n = 1024 if small else 60_000
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    data = ImageSet(images, labels)
    config = VAEConfig(num_classes=10 if family == "cvae" else 0)
    return VAETask(family, config, data, data, dataset="random", lr=1e-3, batch_size=128, seed=0, device=device,
                   epochs=1), 128


def cyclegan_task(device, small: bool):
    from gencli.data import UnpairedData, load_size
    from gencli.models.cyclegan import CycleGANConfig
    from gencli.training.cyclegan import CycleGANTask

    size = 64 if small else 256
    g = torch.Generator().manual_seed(0)
    images = lambda n, s: torch.randint(0, 256, (n, 3, s, s), generator=g, dtype=torch.uint8)  # noqa: E731
    data = UnpairedData("random", images(8, load_size(size)), images(8, load_size(size)), images(1, size), images(1, size))
    config = CycleGANConfig(image_size=size, ngf=16 if small else 64, n_blocks=2 if small else 9)
    return CycleGANTask(config, data, epochs=1, batch_size=1, device=device), 1


def stylegan_task(device, small: bool):
    from gencli.models.stylegan import StyleGANConfig, default_widths
    from gencli.training.stylegan import StyleGANTask

    res = 32 if small else 256
    batch = 8 if small else 32
    config = StyleGANConfig(resolution=res, channels=3, widths=default_widths(res, max_channels=512),
                            z_dim=512, w_dim=512)
    images = torch.randint(0, 256, (256, 3, res, res), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return StyleGANTask(config, images, dataset="random", batch_size=batch, r1_every=4, tick_images=batch * 64,
                        device=device), batch


def build(family: str, device, small: bool):
    if family in ("vae", "cvae"):
        return vae_task(family, device, small)
    return {"cyclegan": cyclegan_task, "stylegan": stylegan_task}[family](device, small)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(family: str, device: torch.device, dtype, steps: int, small: bool) -> dict:
    torch.manual_seed(0)
    task, batch = build(family, device, small)
    batches = task.epoch_batches(1)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with autocast:
        task.train_step(batches[0])  # warm-up: allocations, cuDNN autotuning
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    finite = True
    t0 = time.perf_counter()
    for i in range(steps):
        with autocast:
            logs = task.train_step(batches[(i + 1) % len(batches)])
        finite &= all(math.isfinite(v) for v in logs.values())
    sync(device)
    seconds = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"ms": 1000 * seconds, "images_per_s": batch / seconds, "peak_gib": peak, "finite": finite}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["vae", "cvae", "cyclegan", "stylegan", "all"], default="all")
    parser.add_argument("--steps", type=int, default=10, help="steps to time after one warm-up step")
    parser.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16", help="autocast precision")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--small", action="store_true", help="small sizes, for a check of the script itself")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; this benchmark is for a GPU (try --device cpu --small to check the script)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"torch {torch.__version__} on {torch.cuda.get_device_name(device)}")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    families = ["vae", "cvae", "cyclegan", "stylegan"] if args.family == "all" else [args.family]
    print(f"{'family':9s} {'precision':9s} {'ms/step':>9s} {'images/s':>9s} {'peak GiB':>9s}  finite")
    for family in families:
        for name, amp in (("fp32", None), (args.dtype, dtype)):
            r = measure(family, device, amp, args.steps, args.small)
            print(f"{family:9s} {name:9s} {r['ms']:9.1f} {r['images_per_s']:9.1f} {r['peak_gib']:9.2f}  {r['finite']}")


if __name__ == "__main__":
    main()
