"""Seconds per training epoch of gencli's VAE step with pytorch/examples' architecture.

pytorch/examples' mnist VAE: 784-400-20 (one hidden layer of 400, latent 20), batch 128, Adam 1e-3.
This script trains it through gencli's own training task (the code `gencli train vae` runs) for one
or more epochs on MNIST and prints seconds per epoch and the test loss in nats per image. It also
prints the floor that the matrix products alone set: the multiply-adds of an epoch's forward and
backward passes at the float32 matmul throughput measured on this machine.

    python benchmarks/vae_speed.py --data-dir ../shared/data [--epochs 1] [--device cpu]
    python benchmarks/vae_speed.py --data-dir ../shared/data --hidden 512,256 --latent-dim 2 --batch-size 64
                                                             # gencli's default 2-D model
"""

from __future__ import annotations

import argparse
import time

import torch

from compute_floor import matmul_gflops, step_flops
from gencli.data import load_idx_dataset
from gencli.distributed import resolve_device
from gencli.models.vae import VAEConfig
from gencli.training.common import seed_everything
from gencli.training.vae import VAETask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", default="400")
    parser.add_argument("--latent-dim", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--ema-decay", type=float, default=0.9999, help="gencli's weight average; 0 skips it")
    args = parser.parse_args()

    seed_everything(0)
    device = resolve_device(args.device)
    train, test = load_idx_dataset("mnist", args.data_dir)
    config = VAEConfig(hidden=tuple(int(h) for h in args.hidden.split(",")), latent_dim=args.latent_dim)
    task = VAETask("vae", config, train, test, dataset="mnist", lr=1e-3, batch_size=args.batch_size, seed=0,
                   device=device, epochs=args.epochs, lr_schedule="constant", ema_decay=args.ema_decay)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"VAE 784-{args.hidden}-{args.latent_dim}, batch {args.batch_size}, ema {args.ema_decay}")
    for epoch in range(1, args.epochs + 1):
        batches = task.epoch_batches(epoch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for batch in batches:
            task.train_step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        from gencli.inference.vae import evaluate

        metrics, _ = evaluate(task.exported_model()[0], test.images, test.labels)
        print(f"epoch {epoch}: {seconds:.2f} s/epoch ({len(train) / seconds:.0f} images/s), "
              f"test loss {metrics['loss']:.2f} nats/image")
    if device.type == "cpu":  # after the timed epochs, so that the extra step does not change them
        batch = task.epoch_batches(args.epochs + 1)[0]
        flops = step_flops(lambda: task.train_step(batch)) / len(batch) * len(train)
        gflops = matmul_gflops()
        print(f"an epoch is {flops / 1e9:.0f} GFLOP; at the float32 matmul peak of {gflops:.0f} GFLOP/s "
              f"the products alone take {flops / gflops / 1e9:.2f} s/epoch")


if __name__ == "__main__":
    main()
