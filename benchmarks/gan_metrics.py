"""FID and KID of the bundled GANs with the standard Inception features (see gencli.metrics).

- CycleGAN (default: assets/monet2photo.safetensors): testA translated to B against trainB, testB translated
  to A against trainA, beside the untranslated test images against the same references (the baseline).
- StyleGAN (default: assets/stylegan.safetensors, an MNIST model): samples of seeds 0..N-1 at truncation 1 against a fixed
  subset (seed 0) of the MNIST training images, padded to 32 px as the model was trained; plus the class
  spread and confidence of (by default 10000) samples as the bundled MNIST classifier sees them.

KID is printed x 1000. Reference features are cached in <cache>/gencli/features.

    OMP_NUM_THREADS=1 python benchmarks/gan_metrics.py --data-dir ../shared/data [--samples 10000]
        [--reference 10000] [--digit-samples 10000] [--inception PATH] [--cyclegan CKPT]
        [--stylegan CKPT] [--classifier CKPT] [--skip-cyclegan] [--skip-stylegan] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from gencli.checkpoint import load_model
from gencli.data import data_root
from gencli.inference.evaluation import evaluate_generator, evaluate_translation, feature_cache_dir, reference_subset
from gencli.metrics import load_digit_classifier, load_inception

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # the bundled models of this checkout


def progress_printer():
    start, last = time.perf_counter(), {}

    def report(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last.get(stage, 0) > 60:
            last[stage] = now
            print(f"  [{now - start:6.0f} s] {stage}: {done}/{total}", file=sys.stderr, flush=True)
    return report


def cyclegan_figures(args, net) -> dict:
    from gencli.models.cyclegan import load_translator

    model, meta = load_translator(args.cyclegan)
    root = Path(args.cyclegan_data) if args.cyclegan_data else data_root(args.data_dir) / "monet2photo"
    t0 = time.perf_counter()
    r = evaluate_translation(model, root, net, cache_dir=feature_cache_dir(), progress=progress_printer())
    print(f"\nCycleGAN {meta['path']} on {root} ({time.perf_counter() - t0:.0f} s); KID x 1000")
    print(f"{'direction':<10} {'inputs':>8} {'reference':>10} {'FID':>8} {'KID':>8} {'input FID':>10} {'input KID':>10}")
    for d, (src, ref) in (("a2b", ("test_a", "train_b")), ("b2a", ("test_b", "train_a"))):
        if f"fid_{d}" in r:
            print(f"{d:<10} {r[f'n_{src}']:>8} {r[f'n_{ref}']:>10} {r[f'fid_{d}']:>8.1f} {1000 * r[f'kid_{d}']:>8.1f} "
                  f"{r[f'baseline_fid_{d}']:>10.1f} {1000 * r[f'baseline_kid_{d}']:>10.1f}")
    return {"checkpoint": str(meta["path"]), **r}


def stylegan_figures(args, net) -> dict:
    from gencli.metrics import digit_stats
    from gencli.models.stylegan import generate, load_images

    path = Path(args.stylegan)
    G, meta = load_model(path, "stylegan")
    reference = reference_subset(load_images("mnist", args.data_dir, G.config.resolution), args.reference)
    t0 = time.perf_counter()
    r = evaluate_generator(G, reference, net, n_samples=args.samples, cache_dir=feature_cache_dir(),
                           progress=progress_printer())
    print(f"\nStyleGAN {path} ({time.perf_counter() - t0:.0f} s): {r['n_samples']} samples (seeds 0-{r['n_samples'] - 1}, "
          f"truncation 1) against {r['n_reference']} MNIST training images (a fixed subset, seed 0)")
    print(f"FID {r['fid']:.2f}   KID x 1000 {1000 * r['kid']:.2f}")
    # The classifier is cheap: it judges its own, larger set of samples.
    samples = torch.cat([generate(G, list(range(i, min(i + 500, args.digit_samples))))
                         for i in range(0, args.digit_samples, 500)])
    d = digit_stats(samples, load_digit_classifier(args.classifier))
    print(f"{args.digit_samples} samples (seeds 0-{args.digit_samples - 1}) classified as "
          + ", ".join(f"{k}: {p:.1%}" for k, p in enumerate(d["class_fraction"])))
    print(f"classes with at least 5% of the samples: {d['classes_at_5pct']} of 10; mean confidence "
          f"{d['mean_confidence']:.3f}; confident (max probability > 0.9): {d['confident']:.1%}")
    return {"checkpoint": str(path), **r, "digits": {"n_samples": args.digit_samples, **d}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--inception", default=None, help="Inception weights file (else GENCLI_INCEPTION, cache)")
    parser.add_argument("--cyclegan", default=str(ASSETS / "monet2photo.safetensors"), help="checkpoint or name")
    parser.add_argument("--cyclegan-data", default=None, help="the unpaired folder (default: <data dir>/monet2photo)")
    parser.add_argument("--stylegan", default=str(ASSETS / "stylegan.safetensors"))
    parser.add_argument("--classifier", default=str(ASSETS / "mnist_classifier.safetensors"))
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--reference", type=int, default=10000, help="MNIST training images compared with")
    parser.add_argument("--digit-samples", type=int, default=10000, help="StyleGAN samples the classifier judges")
    parser.add_argument("--skip-cyclegan", action="store_true")
    parser.add_argument("--skip-stylegan", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()

    net = load_inception(args.inception)
    print(f"Inception features; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    figures = {}
    if not args.skip_cyclegan:
        figures["cyclegan"] = cyclegan_figures(args, net)
    if not args.skip_stylegan:
        figures["stylegan"] = stylegan_figures(args, net)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
