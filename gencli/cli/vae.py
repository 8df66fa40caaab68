"""CLI commands of the vae and cvae families (`train vae|cvae` is in gencli.cli.training): `sample` (which also draws from stylegan
models), `latent-grid`, `reconstruct`, `evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.progress import StageProgress
from gencli.cli.shared import (CheckpointOpt, CvaeLabelOpt, DataDirOpt, DeviceName, DeviceOpt, EvaluateModelArg, JsonOpt,
                               LabelOpt, LogEveryOpt, ModelArg, ModelOpt, NoiseModeOpt, OutputOpt, ScaleOpt, TruncationCutoffOpt,
                               VaeModelArg, app, default_output, examples, fails_cleanly, finish, model_choice,
                               model_name, model_stem, replacing)
from gencli.errors import OptionError

@app.command(epilog=examples(
    "gencli sample vae                      # vae_samples.png: 64 prior samples",
    "gencli sample cvae --label 3 --seeds 0-31 -o threes.png",
    "gencli sample stylegan --seeds 0-63 --trunc 0.7 --json"))
@fails_cleanly
def sample(
    model: ModelArg = None,
    n: Annotated[Optional[int], typer.Option("-n", help="Number of images (default 64; cvae: 10 rows).")] = None,
    nrow: Annotated[Optional[int], typer.Option(help="Images per row (default 8; a conditional model without --label: fewer when 8 a row would leave a class out).")] = None,
    seed: Annotated[int, typer.Option(help="First seed; image i uses seed+i.")] = 0,
    seeds: Annotated[Optional[str], typer.Option(help="Explicit seeds, e.g. 0-63 or 1,5,9 (overrides -n/--seed); stylegan: w files of `gencli project` too, e.g. photo_w.safetensors,0-6.")] = None,
    label: LabelOpt = None,
    truncation: Annotated[Optional[float], typer.Option(help="stylegan only: truncation psi in [0, 1] (default 0.7; 1 disables it; an imported StyleGAN2: 1, as NVIDIA's tools).")] = None,
    truncation_cutoff: TruncationCutoffOpt = None,
    noise_mode: NoiseModeOpt = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    outdir: Annotated[Optional[Path], typer.Option(help="Write one PNG per seed into this folder (seed0042.png), as NVIDIA's gen_images.py --outdir; the grid too when -o is given.")] = None,
    scale: ScaleOpt = 1,
    annotate: Annotated[bool, typer.Option(help="Head each row with its label (cvae) or its seeds.")] = False,
    device: DeviceOpt = DeviceName.auto,
    as_json: JsonOpt = False,
    model_opt: ModelOpt = None,
) -> None:
    """Draw samples from the prior, one image per seed: a grid (-o), one file per seed (--outdir), or both."""
    from gencli import api

    family, checkpoint = model_choice(model_name(model, model_opt), checkpoint)
    if family is None and checkpoint is None:
        raise OptionError("name a model (e.g. `gencli sample vae`) or pass --checkpoint")
    if seeds is not None:
        seed_list = api.common.parse_seed_items(seeds)
    elif n is not None:
        seed_list = api.common.parse_seeds(f"{seed}-{seed + n - 1}", "-n/--seed")
    else:
        seed_list = None
    out = output or (None if outdir else default_output(  # --outdir alone: one file per seed, no grid
        f"{model_stem(family, checkpoint, 'model')}_samples", None if label is None else f"label{label}",
        "annotated" if annotate else None, f"x{scale}" if scale > 1 else None))
    replaced = replacing(out) if out else ""
    path = api.sample(family, checkpoint=checkpoint, seeds=seed_list, label=label, nrow=nrow, out=out,
                      device=device.value, truncation=truncation, outdir=outdir, scale=scale, annotate=annotate,
                      noise_mode=noise_mode.value if noise_mode else None, truncation_cutoff=truncation_cutoff)
    names, legend = api.class_names(family, checkpoint), ""
    digits = names == [str(k) for k in range(len(names))]  # digits need no legend
    if names and label is not None:
        legend = f" (class {label})" if digits else f" (class {label}: {names[label]})"
    elif names:
        legend = f"; row r shows class r % {len(names)}"
        if not digits:
            legend += ": " + ", ".join(f"{k} {name}" for k, name in enumerate(names))
    text = (f"Samples written to {path}{replaced}{legend}" + (f"; one PNG per seed in {outdir}" if outdir else "")
            if out else f"One PNG per seed written to {outdir}{legend}")
    finish(as_json, text, output=str(path) if out else None, seeds=seed_list, outdir=str(outdir) if outdir else None,
           classes=names or None)


@app.command("latent-grid", epilog=examples(
    "gencli latent-grid                     # vae_latent_grid.png",
    "gencli latent-grid --range minmax      # vae_latent_grid_minmax.png",
    "gencli latent-grid cvae --label 8 -o eights.png",
    "gencli latent-grid -c runs/vae16 --dims 0,1 --range=-3,3"))
@fails_cleanly
def latent_grid(
    model: VaeModelArg = None,
    label: CvaeLabelOpt = None,
    steps: Annotated[int, typer.Option(help="Grid size: steps x steps images.")] = 8,
    range_: Annotated[str, typer.Option("--range", help="prior: the standard normal's quantiles at (i + 0.5)/steps (Kingma & Welling, Fig. 4); minmax: the test set's range of latent means; or LO,HI (evenly spaced).", metavar="prior|minmax|LO,HI")] = "prior",
    dims: Annotated[Optional[str], typer.Option(help="The two latent dimensions to span, I,J (needed beyond 2-D).")] = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    scale: ScaleOpt = 1,
    annotate: Annotated[bool, typer.Option(help="Write the z values along the axes (with --animate: on each frame).")] = False,
    animate: Annotated[bool, typer.Option(help="Write an animation (-o NAME.gif or .webp) walking the grid row by row, alternating direction.")] = False,
    device: DeviceOpt = DeviceName.auto,
    as_json: JsonOpt = False,
    model_opt: ModelOpt = None,
) -> None:
    """Decode a grid of points spanning the latent space (a vae or cvae; --label implies cvae): by
    default the prior's quantiles, so every cell is a likely code."""
    from gencli import api

    family, checkpoint = model_choice(model_name(model, model_opt), checkpoint)
    dim_pair = api.common.parse_ints(dims, "--dims") if dims else None
    if dim_pair is not None and len(dim_pair) != 2:
        raise OptionError("--dims takes two dimensions, e.g. 0,1")
    stem = model_stem(family, checkpoint, "cvae" if label is not None else "vae")
    span = None if range_ == "prior" else ("minmax" if range_ in ("minmax", "auto") else
                                           "range" + range_.replace(",", "_").replace(" ", ""))
    out = output or default_output(
        f"{stem}_latent_grid", None if label is None else f"label{label}", span,
        f"dims{dim_pair[0]}-{dim_pair[1]}" if dim_pair else None, f"steps{steps}" if steps != 8 else None,
        "annotated" if annotate else None, f"x{scale}" if scale > 1 else None, suffix=".gif" if animate else ".png")
    replaced = replacing(out)
    path = api.latent_grid(family, checkpoint=checkpoint, steps=steps, value_range=range_, label=label,
                           dims=dim_pair, out=out, device=device.value, scale=scale, annotate=annotate,
                           animate=animate)
    finish(as_json, f"Latent grid written to {path}{replaced}", output=str(path))


@app.command(epilog=examples(
    "gencli reconstruct cvae -n 50          # cvae_reconstructions.png, mean loss",
    "gencli reconstruct --annotate          # vae_reconstructions_annotated.png: rows labelled",
    "gencli reconstruct -c runs/vae --json"))
@fails_cleanly
def reconstruct(
    model: VaeModelArg = None,
    n: Annotated[int, typer.Option("-n", help="Number of test images.")] = 50,
    nrow: Annotated[int, typer.Option(help="Images per row; each row of inputs is followed by its reconstructions.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed that picks the test images.")] = 0,
    data_dir: DataDirOpt = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    device: DeviceOpt = DeviceName.auto,
    as_json: JsonOpt = False,
    model_opt: ModelOpt = None,
    annotate: Annotated[bool, typer.Option(help="Label the rows: input, reconstruction.")] = False,
) -> None:
    """Show random test images over their reconstructions, and their mean loss (a vae or cvae)."""
    from gencli import api

    family, checkpoint = model_choice(model_name(model, model_opt), checkpoint)
    out = output or default_output(f"{model_stem(family, checkpoint, 'vae')}_reconstructions",
                                   "annotated" if annotate else None)
    replaced = replacing(out)
    path, loss = api.reconstruct(family, checkpoint=checkpoint, n=n, nrow=nrow, seed=seed, data_dir=data_dir,
                                 out=out, device=device.value, annotate=annotate)
    finish(as_json, f"Reconstructions written to {path}{replaced}; mean loss {loss:.2f} nats per image",
           output=str(path), loss=loss)


@app.command(epilog=examples(
    "gencli evaluate vae                    # runs/vae, else the bundled vae",
    "gencli evaluate cvae --json            # {\"loss\": ..., \"models\": [...]}",
    "gencli evaluate monet2photo --json     # fid_a2b, kid_a2b, ... and the untranslated baselines",
    "gencli evaluate stylegan --samples 200 --reference 200   # a quick look (default 1000 of each)",
    "gencli evaluate monet2photo --max-images 100   # a quick look: 100 images per folder"))
@fails_cleanly
def evaluate(
    model: EvaluateModelArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: the scores and the model used.")] = False,
    data: Annotated[Optional[str], typer.Option(help="stylegan/cyclegan: the data set to compare with (default: the model's own).")] = None,
    data_dir: DataDirOpt = None,
    inception: Annotated[Optional[Path], typer.Option(envvar="GENCLI_INCEPTION", help="stylegan/cyclegan: the Inception-v3 TorchScript file of the StyleGAN/clean-fid tools (default: the cache, else downloaded once).")] = None,
    samples: Annotated[int, typer.Option(help="stylegan: samples to score (seeds 0, 1, ...): minutes on a CPU; FID falls as N grows, so compare scores at equal N (papers use 50000).")] = 1000,
    reference: Annotated[int, typer.Option(help="stylegan: training images to compare with (a fixed subset).")] = 1000,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = DeviceName.auto,
    model_opt: ModelOpt = None,
    max_images: Annotated[Optional[int], typer.Option(help="cyclegan: at most N images of each test and training folder (a fixed subset; default all).")] = None,
    log_every: LogEveryOpt = 30.0,
) -> None:
    """A model's scores: vae/cvae, the test-set loss (negative ELBO) in nats per image with its BCE and KL
    parts; stylegan and cyclegan, FID and KID against the training images (cyclegan: each direction,
    beside the untranslated inputs' scores, the baseline a model must beat)."""
    from gencli import api

    family, checkpoint = model_choice(model_name(model, model_opt), checkpoint)
    with StageProgress(log_every=log_every) as progress:
        gan = {} if family in ("vae", "cvae") else dict(data=data, inception=inception, samples=samples,
                                                          reference=reference, max_images=max_images,
                                                          progress=progress)
        metrics = api.evaluate(family, checkpoint=checkpoint, data_dir=data_dir, device=device.value, **gan)
    if "loss" in metrics:
        text = f"test loss {metrics['loss']:.2f} nats/image (BCE {metrics['bce']:.2f} + KL {metrics['kl']:.2f})"
    elif "fid" in metrics:
        text = (f"FID {metrics['fid']:.2f}  KID x1000 {1000 * metrics['kid']:.2f}  ({metrics['n_samples']} samples "
                f"against {metrics['n_reference']} training images of {metrics['data']})")
        digits = metrics.get("digits")
        if digits:
            text += (f"\ndigit classifier: {100 * digits['confident']:.1f}% confident, "
                     f"{100 * digits.get('accuracy', float('nan')):.2f}% the requested class" if "accuracy" in digits
                     else f"\ndigit classifier: {100 * digits['confident']:.1f}% confident")
    else:
        counts = {"a2b": ("a", "b"), "b2a": ("b", "a")}
        text = "\n".join(f"{d}: FID {metrics[f'fid_{d}']:.1f}  KID x1000 {1000 * metrics[f'kid_{d}']:.1f}   "
                         f"untranslated: FID {metrics[f'baseline_fid_{d}']:.1f}  KID x1000 "
                         f"{1000 * metrics[f'baseline_kid_{d}']:.1f}   ({metrics[f'n_test_{counts[d][0]}']} test "
                         f"images against {metrics[f'n_train_{counts[d][1]}']} training images)"
                         for d in ("a2b", "b2a") if f"fid_{d}" in metrics)
    finish(as_json, text, **metrics)
