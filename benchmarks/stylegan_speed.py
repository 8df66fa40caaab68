"""Training and sampling images per second of gencli's StyleGAN (the training defaults unless told otherwise).

Training runs StyleGANTask.train_step, the code `gencli train stylegan` runs (D step, lazy R1, G step,
w average, EMA), on random uint8 images of the configured size, so no data set is needed; sampling
runs `generate` (each image from its own seed, truncation 0.7). Both on the CPU, and on CUDA when
present. The thread count matters on a shared CPU: compare `--threads 1` with the default.

    python benchmarks/stylegan_speed.py [--steps 20] [--threads N] [--resolution 32] [--widths 128,64,32,16]
"""

from __future__ import annotations

import argparse
import time

import torch

from gencli.inference.stylegan import generate
from gencli.models.stylegan import StyleGANConfig, default_widths
from gencli.training.stylegan import StyleGANTask


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(config: StyleGANConfig, device: torch.device, steps: int, batch_size: int, n_samples: int) -> tuple[float, float]:
    images = torch.randint(0, 256, (max(1024, batch_size), config.channels, config.resolution, config.resolution),
                           dtype=torch.uint8)
    task = StyleGANTask(config, images, dataset="random", batch_size=batch_size, r1_gamma=0.01, seed=0,
                        tick_images=batch_size * (steps + 2), device=device)
    batches = task.epoch_batches(1)
    task.train_step(batches[0])  # warm-up (allocations, cuDNN autotuning)
    sync(device)
    t0 = time.perf_counter()
    for batch in batches[1 : steps + 1]:  # includes R1 every 16 steps, as in training
        task.train_step(batch)
    sync(device)
    train_rate = steps * batch_size / (time.perf_counter() - t0)

    generate(task.G_ema, list(range(8)), truncation=0.7)
    sync(device)
    t0 = time.perf_counter()
    generate(task.G_ema, list(range(n_samples)), truncation=0.7)
    sync(device)
    return train_rate, n_samples / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps to time")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=256, help="images to sample")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--widths", default=None, help="default: gencli's default for the resolution")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else default_widths(args.resolution)
    # What `gencli train stylegan` picks: tanh output for 1-channel digits, one mbstd group per batch of <= 32.
    config = StyleGANConfig(resolution=args.resolution, channels=args.channels, widths=widths,
                            tanh_output=args.channels == 1, mbstd_group=min(args.batch_size, 32))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; StyleGAN {args.resolution} px, "
          f"{args.channels} channel(s), widths {','.join(map(str, widths))}, z/w {config.z_dim}/{config.w_dim}, "
          f"batch {args.batch_size}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        torch.manual_seed(0)
        train_rate, sample_rate = measure(config, device, args.steps, args.batch_size, args.samples)
        print(f"{device.type:4s}: training {train_rate:7.1f} images/s   sampling {sample_rate:8.1f} images/s")


if __name__ == "__main__":
    main()
