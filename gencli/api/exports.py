"""`gencli export`: a model's image-making network as ONNX or TorchScript, or its checkpoint with float16
weights (see gencli.weights.export)."""

from __future__ import annotations

from pathlib import Path

import torch

from gencli.api.common import check_numbers
from gencli.checkpoint import load_discriminator, load_model, save_model
from gencli.errors import GencliError, OptionError
from gencli.files import check_writable, require_packages
from gencli.models.cyclegan import check_direction
from gencli.catalog import ModelSource, locate_model
from gencli.runs import open_model
from gencli.weights.export import export_network

EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
TOLERANCE = {False: 1e-3, True: 5e-2}  # largest difference from PyTorch on images in [0, 1], by fp16
HINT = "name a model (vae, cvae, stylegan, monet2photo, runs/NAME, an imported one) or give a checkpoint"


def export(model: str | Path | ModelSource, *, format: str = "onnx", out: str | Path | None = None, fp16: bool = False,
           direction: str = "a2b", truncation: float | None = None) -> dict:
    """Export `model` (a name, an id such as bundled:cvae, a run folder, a checkpoint, or a ModelSource
    located already) as `format`; returns {"output", "format",
    "family", "network", "inputs", "max_abs_diff"}: the file written, what it takes, and the largest
    difference of its output from PyTorch's on a sample input (images in [0, 1])."""
    check_numbers(locals())
    if format not in EXPORT_FORMATS:
        raise OptionError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    check_direction(direction)
    if format == "onnx":
        require_packages(("onnx",), "export", "--format onnx")  # torch.onnx writes the file with it
    given = locate_model(model, hint=HINT) if not isinstance(model, ModelSource) else model
    net, meta = open_model("export", None, given, "cpu")
    family = meta["family"]
    if truncation is not None and family not in ("stylegan", "stylegan2"):
        raise OptionError(f"--truncation applies to stylegan models only, not {family}")
    if family == "cyclegan" and direction not in net.config.directions:
        raise OptionError(f"this model holds no {direction} generator (it has {', '.join(net.config.directions)})")
    stem = meta["path"].parent.name if meta["path"].name == "model.safetensors" else meta["path"].stem
    suffix = f"_{direction}" if family == "cyclegan" and format != "safetensors" else ""
    out = check_writable(Path(out) if out else Path(f"{stem}{suffix}{EXPORT_FORMATS[format]}"))
    if format == "safetensors":
        if out.resolve() == meta["path"].resolve():
            raise OptionError(f"-o {out} is the checkpoint being exported; write elsewhere")
        # an imported StyleGAN2's discriminator goes along (it is what fine-tuning starts from)
        D = load_discriminator(meta["path"])[0] if meta["extra"].get("discriminator") else None
        save_model(out, family, net, net.config, epoch=meta["epoch"], seed=meta["seed"], extra=meta["extra"],
                   dtype=torch.float16 if fp16 else None, discriminator=D)
        again, _ = load_model(out, family)
        diff = max(((a.float() - b.float()).abs().max().item() for a, b in
                    zip(net.state_dict().values(), again.state_dict().values()) if a.numel()), default=0.0)
        result = {"inputs": [], "max_abs_diff": diff}
        network = "checkpoint"
    else:
        result = export_network(net, family, format, out, fp16=fp16, direction=direction, truncation=truncation)
        if not result["max_abs_diff"] <= TOLERANCE[fp16]:
            raise GencliError(f"the exported {format} network differs from PyTorch by {result['max_abs_diff']:.3g} "
                              f"(more than {TOLERANCE[fp16]}); {out} was written but should not be trusted")
        network = {"vae": "vae decoder", "cvae": "cvae decoder", "stylegan": "stylegan generator",
                   "stylegan2": "stylegan2 generator (its constant noise)",
                   "cyclegan": f"cyclegan {direction} generator"}[family]
    return {"output": str(out), "format": format, "family": family, "network": network, "fp16": fp16, **result}
