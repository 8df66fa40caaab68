"""Published CycleGAN weights: official generators of junyanz/pytorch-CycleGAN-and-pix2pix converted into
gencli checkpoints (one direction each, merged per name), and the float16 export of a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from gencli.checkpoint import load_model, read_metadata, save_model
from gencli.errors import GencliError
from gencli.files import check_name, load_foreign_state, tensor_dict
from gencli.models.cyclegan import DIRECTIONS, CycleGANConfig, ResnetGenerator, build, check_direction
from gencli.runs import find_checkpoint, models_dir, path_argument


_DROPPED = ("running_mean", "running_var", "num_batches_tracked")


def convert_official_generator(state: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    """A ResnetGenerator state dict of junyanz/pytorch-CycleGAN-and-pix2pix -> (config fields, state dict
    of our ResnetGenerator). Instance-norm running statistics that old official files carry are dropped;
    the dropout layout (second conv at conv_block.6) and any number of blocks (6 or 9) are recognised."""
    if not tensor_dict(state):
        raise GencliError("not a CycleGAN generator: expected a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()
             if isinstance(k, str) and not k.endswith(_DROPPED)}
    if "model.1.weight" not in state:
        raise GencliError("not a CycleGAN ResNet generator: no model.1.weight (the first 7x7 conv)")
    first = state["model.1.weight"]
    if first.ndim != 4 or tuple(first.shape[1:]) != (3, 7, 7):
        raise GencliError(f"not a CycleGAN RGB generator: model.1.weight has shape {tuple(first.shape)}")
    blocks = {int(k.split(".")[1]) for k in state if ".conv_block." in k}
    dropout = any(".conv_block.6." in k for k in state)
    fields = {"ngf": int(first.shape[0]), "n_blocks": len(blocks), "dropout": dropout}
    reference = ResnetGenerator(**fields).state_dict()
    if set(state) != set(reference) or any(state[k].shape != v.shape for k, v in reference.items()):
        missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else "shapes differ")
        raise GencliError(f"not a CycleGAN ResNet generator of the official layout ({detail})")
    return fields, {k: v.float() for k, v in state.items()}


def import_official(pth: str | Path, *, name: str | None = None, direction: str = "a2b", out: str | Path | None = None,
                    overwrite: bool = False) -> Path:
    """Convert an official generator .pth into a cyclegan checkpoint holding that one direction, written to
    `out` or <models dir>/NAME.safetensors. When that file already holds the other direction of the same
    architecture, the two are merged into one model (e.g. monet2photo a2b + style_monet b2a)."""
    pth = Path(pth)
    check_direction(direction)
    name = check_name(name or pth.stem, "model name")
    target = Path(out) if out else models_dir() / f"{name}.safetensors"
    state = load_foreign_state(pth)
    fields, weights = convert_official_generator(state)

    directions, generators = [direction], {direction: weights}
    sources = {direction: pth.name}
    if target.is_file():
        meta = read_metadata(target)
        old = meta["config"]
        same_arch = meta["family"] == "cyclegan" and all(old.get(k) == v for k, v in fields.items())
        if direction in old.get("directions", []) or not same_arch:
            if not overwrite:
                raise GencliError(f"{target} already exists; pass --overwrite to replace it")
        else:  # keep the other direction already imported under this name
            model, _ = load_model(target, "cyclegan")
            for d in old["directions"]:
                generators[d] = model.generator(d).state_dict()
            sources = {**meta["extra"].get("imported_from", {}), **sources}
            directions = [d for d in DIRECTIONS if d in generators]
    config = CycleGANConfig(**fields, directions=tuple(d for d in DIRECTIONS if d in directions))
    model = build(config)
    for d, sd in generators.items():
        model.generator(d).load_state_dict(sd)
    extra = {"dataset": name, "source": "junyanz/pytorch-CycleGAN-and-pix2pix", "imported_from": sources}
    return save_model(target, "cyclegan", model, config, epoch=0, seed=0, extra=extra)


def export_fp16(checkpoint: str | Path, out: str | Path) -> Path:
    """Write a cyclegan checkpoint (a path, or a model name found as `translate` finds it) with float16
    generators (half the size), e.g. for the bundled assets/monet2photo.safetensors; load_model casts them
    back to float32."""
    path = path_argument(checkpoint)
    model, meta = load_model(find_checkpoint(str(checkpoint), path), "cyclegan")
    return save_model(Path(out), "cyclegan", model, model.config, epoch=meta["epoch"], seed=meta["seed"],
                      extra=meta["extra"], dtype=torch.float16)
