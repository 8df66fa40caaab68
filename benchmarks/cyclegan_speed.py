"""CycleGAN speed and memory on this machine.

Prints (1) seconds per training iteration (batch 1; 256 px and 9 blocks by default) for fp32 and the
faster precision / memory-format options (channels_last, bf16 autocast), and (2) translate latency and
peak memory (VmHWM of a fresh process per size) for given image sizes. With the fp32 timing it prints
the floor that arithmetic sets: one iteration's FLOPs at the measured float32 matmul throughput.

    python benchmarks/cyclegan_speed.py                      # everything, paper-size model
    python benchmarks/cyclegan_speed.py --image-size 128 --ngf 32 --n-blocks 6   # the bundled CPU model
    python benchmarks/cyclegan_speed.py --skip-train --translate-sizes 512,2048

Figures depend on other load on the machine: run it when the CPUs are otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from compute_floor import matmul_gflops, step_flops


def train_speed(image_size: int, ngf: int, n_blocks: int, iters: int, precision: str, channels_last: bool,
                count_flops: bool = False) -> tuple[float, int | None]:
    """Seconds per training iteration, and (if asked) the FLOPs of one iteration."""
    import torch

    from gencli.data import UnpairedData, load_size
    from gencli.models.cyclegan import CycleGANConfig
    from gencli.training.cyclegan import CycleGANTask

    g = torch.Generator().manual_seed(0)
    full = load_size(image_size)
    images = lambda n: torch.randint(0, 256, (n, 3, full, full), generator=g, dtype=torch.uint8)  # noqa: E731
    data = UnpairedData("bench", images(8), images(8), images(1)[..., :image_size, :image_size],
                        images(1)[..., :image_size, :image_size])
    task = CycleGANTask(CycleGANConfig(image_size=image_size, ngf=ngf, n_blocks=n_blocks), data, epochs=1,
                        precision=precision, channels_last=channels_last)
    batches = task.epoch_batches(1)
    task.train_step(batches[0])  # warm-up: allocator, oneDNN primitive caches
    t0 = time.perf_counter()
    for i in range(iters):
        task.train_step(batches[(i + 1) % len(batches)])
    seconds = (time.perf_counter() - t0) / iters
    return seconds, step_flops(lambda: task.train_step(batches[0])) if count_flops else None


def peak_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM). Unlike ru_maxrss, it is not inherited from the
    parent through fork and exec, so a child started by a big parent still measures itself alone."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB on most systems


def translate_child(size: int, ngf: int, n_blocks: int, precision: str, threads: int) -> None:
    """Runs in its own process, so the peak memory is this translation's alone."""
    import torch

    from gencli.inference.cyclegan import translate_tensor
    from gencli.models.cyclegan import ResnetGenerator, init_weights

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = ResnetGenerator(ngf, n_blocks).eval()
    init_weights(g)
    x = torch.rand(1, 3, size, size) * 2 - 1
    base = peak_rss_mb()
    t0 = time.perf_counter()
    y = translate_tensor(g, x, precision=precision)
    seconds = time.perf_counter() - t0
    assert y.shape == x.shape
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "before_mb": base}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=9)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--options", default="fp32,fp32+cl,bf16,bf16+cl", help="training variants to time")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--translate-sizes", default="512,2048")
    p.add_argument("--translate-precision", default="fp32")
    p.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        translate_child(args.child[0], args.ngf, args.n_blocks, args.translate_precision, args.child[1])
        return
    from gencli.distributed import native_bf16, resolve_precision

    cpu = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {'yes' if native_bf16(cpu) else 'no'} "
          f"(--precision auto picks {resolve_precision('auto', cpu)[0]})")
    if not args.skip_train:
        print(f"training: {args.image_size} px, batch 1, ngf {args.ngf}, {args.n_blocks} blocks, "
              f"{args.iters} iterations after one warm-up")
        times, flops = {}, None
        for option in args.options.split(","):
            precision, _, fmt = option.partition("+")
            times[option], counted = train_speed(args.image_size, args.ngf, args.n_blocks, args.iters, precision,
                                                 fmt == "cl", count_flops=option == "fp32")
            flops = counted or flops
            print(f"  {option:10s} {times[option]:7.3f} s/iter   x{times['fp32'] / times[option] if 'fp32' in times else 1:.2f} vs fp32",
                  flush=True)
        best = min(times, key=times.get)
        print(f"  fastest: {best} ({times.get('fp32', times[best]) / times[best]:.2f}x fp32)")
        if flops:
            gflops = matmul_gflops()
            print(f"  an iteration is {flops / 1e12:.2f} TFLOP; at the float32 matmul peak of {gflops:.0f} GFLOP/s "
                  f"it takes at least {flops / gflops / 1e9:.2f} s (fp32 ran at {flops / times['fp32'] / 1e9:.0f} GFLOP/s)")
    for size in [int(s) for s in args.translate_sizes.split(",") if s]:
        cmd = [sys.executable, __file__, "--ngf", str(args.ngf), "--n-blocks", str(args.n_blocks),
               "--translate-precision", args.translate_precision, "--child", str(size),
               str(args.threads or torch.get_num_threads())]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"translate {size}x{size} ({args.translate_precision}, ngf {args.ngf}, {args.n_blocks} blocks): "
              f"{r['seconds']:.2f} s, peak RSS {r['peak_mb']:.0f} MB (model loaded: {r['before_mb']:.0f} MB)", flush=True)


if __name__ == "__main__":
    main()
