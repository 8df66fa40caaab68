"""Seconds per image of gencli's StyleGAN2 generator against NVIDIA's own, on the same CPU.

An FFHQ-config network (1024 px, z/w 512, channel_base 32768, channel_max 512, 8 mapping layers,
num_fp16_res 4, conv_clamp 256, architecture skip) with random weights (biases, noise strengths and w_avg
nonzero) is written as a gencli checkpoint, then timed three ways over seeds 0-7, one image per seed
(z = numpy RandomState(seed).randn(1, 512), noise_mode const), as NVIDIA's gen_images.py draws them:

  (a) the whole gencli process: `python -m gencli sample stylegan -c CKPT --seeds 0-7 --outdir DIR`
      (start-up, checkpoint load and PNG writing included), wall time and its peak resident memory;
  (b) with --nvidia PATH (a checkout of NVlabs/stylegan3 or NVlabs/stylegan2-ada-pytorch, imported from
      there at run time, nothing of it bundled): their Generator of the same config holding the same
      weights, warm, in this process, after one warm-up image;
  (c) gencli's generator warm in this process, the same loop, alternating image by image with (b) so
      that both see the same load on a shared machine.

`--keep-freed` runs the warm loops (b) and (c) with the allocator setting the gencli command makes
(gencli.cli.allocator), so that NVIDIA's generator gets its benefit too. `--floor` also times the
network's convolutions alone as oneDNN computes them directly, and the FLOPs gencli's generator runs. On
CUDA (when present) images per second of both at --cuda-batch. `--resolution 256` runs a smaller
network for a quick check.

    python benchmarks/stylegan2_speed.py [--nvidia ../stylegan3] [--resolution 1024] [--seeds 8] [--repeats 1] [--floor]
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from compute_floor import matmul_gflops, step_flops  # benchmarks/compute_floor.py

from gencli.checkpoint import load_model, save_model
from gencli.models import stylegan2 as sg2



def cpu_description() -> str:
    """The CPU's model name and the vector/matrix units PyTorch's CPU kernels can use."""
    model, flags = "unknown CPU", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.*)$", text, re.MULTILINE).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE).group(1).split())
    except (OSError, AttributeError):
        pass
    units = [name for name, flag in (("AVX2", "avx2"), ("AVX512", "avx512f"), ("AVX512-BF16", "avx512_bf16"),
                                     ("AMX", "amx_tile")) if flag in flags]
    return f"{model}, {os.cpu_count()} logical cores, {' '.join(units) or 'no AVX2'}"


def ffhq_config(resolution: int) -> sg2.StyleGAN2Config:
    return sg2.StyleGAN2Config(img_resolution=resolution, z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768,
                               channel_max=512, num_fp16_res=4, conv_clamp=256.0, architecture="skip")


def random_generator(config: sg2.StyleGAN2Config) -> sg2.Generator:
    torch.manual_seed(0)
    G = sg2.build(config).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("bias", "noise_strength")):
                p.normal_(0, 0.1)
        G.w_avg.normal_()
    return G


def nvidia_state(G: sg2.Generator) -> dict[str, torch.Tensor]:
    """G's state dict under the names of NVIDIA's Generator (mapping.fcN, synthesis.bRES, mapping.w_avg)."""
    resolutions = G.config.resolutions
    state = {}
    for key, value in G.state_dict().items():
        if key == "w_avg":
            key = "mapping.w_avg"
        key = re.sub(r"^mapping\.layers\.(\d+)\.", r"mapping.fc\1.", key)
        key = re.sub(r"^synthesis\.blocks\.(\d+)\.", lambda m: f"synthesis.b{resolutions[int(m[1])]}.", key)
        state[key] = value
    return state


def nvidia_generator(path: Path, G: sg2.Generator, config: sg2.StyleGAN2Config):
    """NVIDIA's Generator from the checkout at `path`, of G's config, holding G's weights."""
    if "pkg_resources" not in sys.modules:  # their gradfix modules import parse_version from it
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            from packaging.version import parse
            sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
    sys.path.insert(0, str(path))
    synthesis = dict(channel_base=config.channel_base, channel_max=config.channel_max,
                     num_fp16_res=config.num_fp16_res, conv_clamp=config.conv_clamp, architecture=config.architecture)
    common = dict(z_dim=config.z_dim, c_dim=0, w_dim=config.w_dim, img_resolution=config.img_resolution,
                  img_channels=config.img_channels, mapping_kwargs=dict(num_layers=config.mapping_layers))
    if (path / "training" / "networks_stylegan2.py").exists():  # the StyleGAN3 release
        from training import networks_stylegan2 as nets
        N = nets.Generator(**common, **synthesis)
    else:  # stylegan2-ada-pytorch
        from training import networks as nets
        N = nets.Generator(**common, synthesis_kwargs=synthesis)
    result = N.load_state_dict(nvidia_state(G), strict=False)
    if result.unexpected_keys or any("resample_filter" not in k for k in result.missing_keys):
        raise SystemExit(f"NVIDIA's generator does not take these weights: {result}")
    return N.eval()


def run_process(ckpt: Path, n: int, outdir: Path) -> tuple[float, float, str]:
    """(seconds, peak resident MB, what ran) of one whole gencli process drawing n seeds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                          os.environ.get("PYTHONPATH", "")])}
    commands = [("gencli sample stylegan --outdir",
                 [sys.executable, "-m", "gencli", "sample", "stylegan", "-c", str(ckpt), "--seeds", f"0-{n - 1}",
                  "--outdir", str(outdir)])]
    for label, command in commands:
        with tempfile.TemporaryFile() as stderr:
            t0 = time.perf_counter()
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
            seconds = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            stderr.seek(0)
            error = stderr.read().decode(errors="replace").strip()
        if proc.returncode == 0 and len(list(outdir.glob("seed*.png"))) == n:
            return seconds, usage.ru_maxrss / 1024, label
        print(f"  ({label.split(':')[0]} failed: {error.splitlines()[-1] if error else proc.returncode})")
    raise SystemExit("no way to run the gencli process worked")


def warm_loop(G_ours, G_nv, n: int, nvidia: bool = False) -> tuple[list[float], list[float]]:
    """Seconds per image of ours and theirs over seeds 0..n-1, alternating, after one warm-up each
    (`nvidia`: G_ours is NVIDIA's, alone)."""
    def z_of(seed):
        return torch.from_numpy(np.random.RandomState(seed).randn(1, 512))
    if nvidia:
        G_ours = functools.partial(G_ours, c=None, force_fp32=True)
    ours, theirs = [], []
    with torch.no_grad():
        G_ours(z_of(0), noise_mode="const")
        if G_nv is not None:
            G_nv(z_of(0), None, noise_mode="const", force_fp32=True)
        for seed in range(n):
            t0 = time.perf_counter()
            G_ours(z_of(seed), noise_mode="const")
            ours.append(time.perf_counter() - t0)
            if G_nv is not None:
                t0 = time.perf_counter()
                G_nv(z_of(seed), None, noise_mode="const", force_fp32=True)
                theirs.append(time.perf_counter() - t0)
    return ours, theirs


def cuda_rates(G_ours, G_nv, batch: int, rounds: int = 5) -> tuple[float, float | None]:
    """Images per second of both on CUDA, batches of `batch` images."""
    dev = torch.device("cuda")
    z = torch.randn(batch, 512, device=dev)
    rates = []
    for G, call in ((G_ours.to(dev), lambda G: G(z, noise_mode="const")),
                    (G_nv.to(dev) if G_nv is not None else None, lambda G: G(z, None, noise_mode="const"))):
        if G is None:
            rates.append(None)
            continue
        with torch.no_grad():
            call(G)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(rounds):
                call(G)
            torch.cuda.synchronize()
        rates.append(rounds * batch / (time.perf_counter() - t0))
    return rates[0], rates[1]


def conv_floor(config: sg2.StyleGAN2Config, rounds: int = 2) -> float:
    """Seconds of the synthesis network's convolutions alone for one image (the 3x3 and transposed 3x3
    ones, channels-last, fastest of `rounds`) as oneDNN computes them directly: what an image would cost
    if everything around them were free. gencli's Winograd road needs fewer multiplications for the
    many-channel ones, so its whole generator can go below this."""
    cl = torch.channels_last
    ops = []
    for r in config.resolutions:
        c = config.channels(r)
        if r > 4:
            cin = config.channels(r // 2)
            ops.append((F.conv_transpose2d, torch.randn(1, cin, r // 2, r // 2), torch.randn(cin, c, 3, 3), dict(stride=2)))
        ops.append((F.conv2d, torch.randn(1, c, r, r), torch.randn(c, c, 3, 3), dict(padding=1)))
    ops = [(f, x.contiguous(memory_format=cl), w.contiguous(memory_format=cl), kw) for f, x, w, kw in ops]
    best = float("inf")
    with torch.no_grad():
        for _ in range(rounds + 1):  # the first round warms oneDNN up
            t0 = time.perf_counter()
            for f, x, w, kw in ops:
                f(x, w, **kw)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia", type=Path, default=None, help="a checkout of NVlabs/stylegan3 or stylegan2-ada-pytorch")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--seeds", type=int, default=8, help="images per run (seeds 0..N-1)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of (a) and of the warm loops")
    parser.add_argument("--cuda-batch", type=int, default=8)
    parser.add_argument("--floor", action="store_true", help="also time the convolutions alone (one image)")
    parser.add_argument("--keep-freed", action="store_true",
                        help="give this process the allocator setting of the gencli command (keep_freed_memory), "
                             "so that both warm loops run with it")
    args = parser.parse_args()
    if args.keep_freed:
        from gencli.cli.allocator import keep_freed_memory

        keep_freed_memory()

    config = ffhq_config(args.resolution)
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
          + ("; warm loops with gencli's allocator setting" if args.keep_freed else ""))
    print(f"StyleGAN2 {args.resolution} px, FFHQ config (z/w 512, channel_base 32768, channel_max 512, 8 mapping "
          f"layers, num_fp16_res 4, conv_clamp 256, skip), seeds 0-{args.seeds - 1}, noise_mode const, batch 1")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_model(Path(tmp) / "ffhq-random.safetensors", "stylegan2", random_generator(config), config,
                          epoch=0, seed=0)
        G, _ = load_model(ckpt, "stylegan2")
        G_nv = nvidia_generator(args.nvidia.resolve(), G, config) if args.nvidia else None
        if G_nv is not None:
            with torch.no_grad():
                z = torch.from_numpy(np.random.RandomState(0).randn(1, 512))
                diff = (G(z) - G_nv(z, None, noise_mode="const", force_fp32=True)).abs().max().item()
            print(f"same weights: largest difference between the two generators' seed-0 images {diff:.2e}")
        for r in range(args.repeats):
            print(f"run {r + 1}:")
            # NVIDIA's loop just before (a) and (interleaved with ours) just after it, so that (a) is set
            # against their speed under the same load on a shared machine.
            before = warm_loop(G_nv, None, args.seeds, nvidia=True)[0] if G_nv is not None else []
            seconds, peak_mb, label = run_process(ckpt, args.seeds, Path(tmp) / f"out{r}")
            per_image = seconds / args.seeds
            print(f"  (a) gencli whole process  {per_image:7.3f} s/image ({seconds:.1f} s for {args.seeds}), "
                  f"peak memory {peak_mb:.0f} MB  [{label}]")
            ours, theirs = warm_loop(G, G_nv, args.seeds)
            print(f"  (c) gencli warm           {np.mean(ours):7.3f} s/image (min {min(ours):.3f})")
            if theirs:
                nv, nv_around = np.mean(theirs), np.mean(before + theirs)
                print(f"  (b) NVIDIA warm           {nv:7.3f} s/image (min {min(theirs):.3f}); "
                      f"{np.mean(before):.3f} just before (a)")
                print(f"  ratio gencli whole process / NVIDIA warm {per_image / nv_around:.2f} (against their mean "
                      f"before and after); gencli warm / NVIDIA warm {np.mean(ours) / nv:.2f} (interleaved)")
        if args.floor:
            print(f"floor: the convolutions alone, oneDNN direct (channels-last) {conv_floor(config):.3f} s/image")
            with torch.no_grad():
                flops = step_flops(lambda: G(torch.randn(1, config.z_dim)))
            peak = matmul_gflops()
            print(f"       {flops / 1e9:.0f} GFLOP per image; at this CPU's float32 matmul peak ({peak:.0f} GFLOP/s) "
                  f"{flops / 1e9 / peak:.3f} s/image")
        if torch.cuda.is_available():
            ours_rate, nv_rate = cuda_rates(G, G_nv, args.cuda_batch)
            line = f"CUDA ({torch.cuda.get_device_name()}), batch {args.cuda_batch}: gencli {ours_rate:.1f} images/s"
            print(line + (f", NVIDIA {nv_rate:.1f} images/s" if nv_rate is not None else ""))


if __name__ == "__main__":
    main()
