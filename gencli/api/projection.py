"""`gencli project`: find the w of a stylegan whose image matches a photo (gencli.inference.projection),
write the projection, a side-by-side with the photo, the w file and optionally the optimization as an
animation. A w file (safetensors: "ws" (num_ws, w_dim) and the projection's noise maps "noise.K", with
the space, model, distance, steps and final distance in its metadata) stands for a seed elsewhere
(`sample`, `style-mix`, `interpolate`: see `latent_items`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from gencli import __version__, perceptual
from gencli.api.common import check_numbers, check_scale
from gencli.errors import GencliError, OptionError
from gencli.files import atomic_write, check_writable
from gencli.images import check_image_path, make_grid, save_animation, save_grid, save_image
from gencli.inference import projection as inference
from gencli.runs import open_model

HINT = "train one with `gencli train stylegan` or pass --checkpoint"
W_FORMAT = "gencli-w"
MAX_FRAMES = 100  # animation frames of a projection, the last one included


# --- the target image ---------------------------------------------------------------------------------

def load_target(path: str | Path, channels: int, resolution: int) -> tuple[torch.Tensor, str]:
    """The photo at `path` as uint8 (channels, resolution, resolution): center-cropped to a square and
    resized (Lanczos), converted to grey or RGB; and one line saying what was done."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise GencliError(f"{path}: no such file")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened
    except (UnidentifiedImageError, OSError) as e:
        raise GencliError(f"cannot read image {path}: {e}") from None
    w, h = image.size
    mode = "L" if channels == 1 else "RGB"
    done = [f"{w}x{h} {image.mode}"]
    if image.mode != mode:
        image = image.convert(mode)
        done.append(f"converted to {'grey' if mode == 'L' else 'RGB'}")
    side = min(w, h)
    if w != h:
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
        done.append(f"center-cropped to {side}x{side}")
    if side != resolution:
        image = image.resize((resolution, resolution), Image.LANCZOS)
        done.append(f"resized to {resolution}x{resolution}")
    if len(done) == 1:
        done.append("used as it is")
    array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    target = array.view(resolution, resolution, channels).permute(2, 0, 1).contiguous()
    return target, f"Target: {path.name}, " + ", ".join(done)


# --- the distance ---------------------------------------------------------------------------------------

def feature_network(distance: str | None, features: str | Path | None = None, *, device="cpu",
                    progress=None) -> tuple[str, torch.nn.Module, str | None]:
    """(distance name, feature network, a line to show or None) for `distance` (lpips, inception, pixel,
    or None: the best there is). `features`: the feature network's file (VGG16 for lpips, the default;
    Inception for inception). Without a distance and without the VGG16 file: inception if the Inception
    file is there, else pixel, with a line saying so; an explicit lpips without it stops with one line."""
    if distance is not None and distance not in perceptual.DISTANCES:
        raise OptionError(f"unknown --distance {distance!r}; use {', '.join(perceptual.DISTANCES)}")
    if distance == "pixel":
        if features is not None:
            raise OptionError("--features names the lpips or inception network; --distance pixel uses none")
        return "pixel", perceptual.PixelFeatures(), None
    if distance == "inception":
        return "inception", perceptual.load_inception_layers(features, device=device, progress=progress), None
    if distance == "lpips" or features is not None or os.environ.get("GENCLI_VGG16") \
            or perceptual.vgg16_cache_path().is_file():
        return "lpips", perceptual.load_vgg16(features, device=device, progress=progress), None
    try:  # no file here: a download, else a fallback
        return "lpips", perceptual.load_vgg16(device=device, progress=progress), None
    except GencliError:
        missing = (f"no VGG16 file for lpips: save {perceptual.VGG16_URL} as {perceptual.vgg16_cache_path()}, "
                   "or pass --features PATH or set GENCLI_VGG16")
    try:
        net = perceptual.load_inception_layers(download=False, device=device)
        return "inception", net, f"Distance: inception ({missing})"
    except GencliError:
        return "pixel", perceptual.PixelFeatures(), f"Distance: pixel ({missing}; no Inception file either)"


# --- w files ---------------------------------------------------------------------------------------------

def save_w(path: Path, ws: torch.Tensor, noise: list[torch.Tensor], **metadata) -> Path:
    """A w file: "ws" (num_ws, w_dim), "noise.K" (1, 1, r, r) and the metadata (JSON values) as strings."""
    from safetensors.torch import save_file

    tensors = {"ws": ws.float().contiguous(), **{f"noise.{k}": n.float().contiguous() for k, n in enumerate(noise)}}
    meta = {"format": W_FORMAT, "gencli_version": __version__,
            **{k: json.dumps(v, default=str) for k, v in metadata.items()}}
    return atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_w(path: str | Path, G=None) -> tuple[torch.Tensor, list[torch.Tensor], dict]:
    """(ws (num_ws, w_dim), noise maps, metadata) of a w file; with `G`, checked to fit its layers."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise GencliError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise GencliError(f"{path} is not a readable w file: {e}") from None
    if raw.get("format") != W_FORMAT or "ws" not in tensors:
        raise GencliError(f"{path} is not a w file of `gencli project`")
    meta = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value) if key not in ("format", "gencli_version") else value
        except ValueError:
            meta[key] = value
    ws = tensors["ws"].float()
    noise = [tensors[f"noise.{k}"].float() for k in range(sum(k.startswith("noise.") for k in tensors))
             if f"noise.{k}" in tensors]
    if G is not None:
        want = (G.num_ws, G.w_avg.shape[-1])
        if ws.ndim != 2 or tuple(ws.shape) != want:
            raise GencliError(f"{path} holds a w of {tuple(ws.shape)} (layers, w_dim), but this model takes "
                              f"{want}: it was projected into another model ({meta.get('model', '?')})")
        shapes = [(1, 1, r, r) for r in G.synthesis.layer_resolutions]
        if [tuple(n.shape) for n in noise] != shapes:
            noise = []  # another layout of noise maps: the command's own noise is used
    return ws, noise, meta


def fixed_ws(G, items: list) -> list:
    """`items` (seeds and w file paths) with every path read into an inference.stylegan.FixedW for G."""
    from gencli.api.common import item_label
    from gencli.inference.stylegan import FixedW

    out = []
    for item in items:
        if isinstance(item, (str, Path)):
            ws, noise, _ = load_w(item, G)
            item = FixedW(ws, noise, item_label(Path(item)))
        out.append(item)
    return out


def w_path(out: Path) -> Path:
    return out.with_name(out.stem + "_w.safetensors")


def compare_path(out: Path) -> Path:
    return out.with_name(out.stem + "_compare" + out.suffix)


def animation_path(out: Path) -> Path:
    return out.with_suffix(".gif") if out.suffix.lower() != ".gif" else out.with_name(out.stem + "_steps.gif")


# --- the command ---------------------------------------------------------------------------------------

def project(*, checkpoint=None, target, steps: int = 1000, space: str = "w", distance: str | None = None,
            features=None, label: int | None = None, seed: int = 0, out=None, animate: bool = False,
            scale: int = 1, device: str = "cpu", progress=None, download_progress=None, on_note=None) -> dict:
    """Project the photo `target` into the stylegan found for `checkpoint` and write: the projection
    (`out`, default <photo>_projected.png), beside it the photo and the projection side by side
    (<out>_compare.png), the w file (<out>_w.safetensors) and with `animate` the optimization as a GIF
    (<out>.gif). Returns what was written and measured, and `notes`: lines saying how the photo was fitted
    and which distance was used if it was not the one asked for, each also given to `on_note(line)` as
    soon as it is known. `progress(step, steps, distance)` after every step."""
    check_numbers(locals())
    check_scale(scale)
    if space not in inference.SPACES:
        raise OptionError(f"--space must be w or w+, got {space!r}")
    if steps < 1:
        raise OptionError(f"--steps must be positive, got {steps}")
    target_path = Path(target)
    out = Path(out) if out is not None else Path(f"{target_path.stem}_projected.png")
    paths = {"output": out, "compare": compare_path(out), "w_file": w_path(out)}
    if animate:
        paths["animation"] = animation_path(out)
    for key, path in paths.items():
        if key == "w_file":
            check_writable(path)
        else:
            check_image_path(path, animated=key == "animation")
    if not target_path.is_file():
        raise GencliError(f"{target_path}: no such file")

    G, meta = open_model("project", None, checkpoint, device, name="stylegan", hint=HINT)
    inference.label_tensor(G, label, 1, "cpu")  # a bad --label before any work
    channels, resolution, _ = inference.image_shape(G)
    notes = []

    def tell(line: str) -> None:
        notes.append(line)
        if on_note:
            on_note(line)

    image, line = load_target(target_path, channels, resolution)
    name, net, note = feature_network(distance, features, device=G.w_avg.device, progress=download_progress)
    for line in (line, note) if note else (line,):  # once both are known: an error comes alone
        tell(line)
    frame_every = max(1, -(-steps // MAX_FRAMES)) if animate else 0
    t0 = time.perf_counter()
    result = inference.project(G, image, net, steps=steps, space=space, label=label, seed=seed,
                               frame_every=frame_every, progress=progress)
    seconds = time.perf_counter() - t0
    photo = image.float() / 255
    psnr = inference.psnr(result.image, photo)
    model = meta["source"].describe()
    save_image(result.image, paths["output"], scale)
    save_grid(torch.stack([photo, result.image]), paths["compare"], nrow=2, scale=scale)
    save_w(paths["w_file"], result.ws, result.noise, space=space, model=model, family=meta["family"],
           distance=name, steps=steps, final_distance=result.distance, psnr=psnr, label=label, seed=seed,
           target=target_path.name)
    if animate:
        frames = torch.stack([make_grid(torch.stack([photo, f]), nrow=2) for f in result.frames])
        shown = [min(k * frame_every, steps) for k in range(len(frames) - 1)] + [steps]
        save_animation(frames, paths["animation"], scale=scale, captions=[f"step {s}" for s in shown])
    return {**{k: str(v) for k, v in paths.items()}, "distance": name, "final_distance": result.distance,
            "first_distance": result.distances[0], "psnr": psnr, "steps": steps, "space": space, "label": label,
            "seed": seed, "seconds": round(seconds, 2), "notes": notes}
