"""`gencli export`: every family's image-making network as ONNX (run with onnxruntime) and TorchScript
(reloaded), compared with the PyTorch model it came from.

Tolerance: 1e-4 absolute on images in [0, 1] for float32 exports (the largest difference seen is about
1e-5, from a different order of float32 sums in onnxruntime); float16 exports are checked by the command
itself (5e-2)."""

import json

import numpy as np
import pytest
import torch

from conftest import run
from gencli.checkpoint import save_model
from gencli.inference import stylegan as sg_inference
from gencli.models import cyclegan as cg
from gencli.models import stylegan as sg

onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
ATOL = 1e-4


def tiny_stylegan(tmp_path, style="adain"):
    torch.manual_seed(0)
    config = sg.StyleGANConfig(resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2, style=style)
    G = sg.build(config).eval()
    with torch.no_grad():  # noise weights start at 0; make them matter, and move w_avg off the origin
        for name, p in G.named_parameters():
            if "noise" in name:
                p.normal_()
        G.w_avg.normal_()
    return G, save_model(tmp_path / f"sg_{style}.safetensors", "stylegan", G, config, epoch=3, seed=0)


def tiny_cyclegan(tmp_path):
    torch.manual_seed(0)
    config = cg.CycleGANConfig(image_size=32, ngf=4, n_blocks=1, ndf=4)
    model = cg.build(config).eval()
    return model, save_model(tmp_path / "cg.safetensors", "cyclegan", model, config, epoch=1, seed=0)


def export(*args):
    result = run("export", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ort(path, **inputs):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])


def test_vae_and_cvae_decoders(tmp_path, vae_ckpt, cvae_ckpt):
    from gencli.checkpoint import load_model

    for ckpt, conditional in ((vae_ckpt, False), (cvae_ckpt, True)):
        model, _ = load_model(ckpt)
        z = torch.randn(5, model.config.latent_dim)
        labels = torch.tensor([0, 3, 9, 1, 2])
        with torch.no_grad():
            expected = torch.sigmoid(model.decode(z, labels if conditional else None))
        onnx_file, ts_file = tmp_path / f"{conditional}.onnx", tmp_path / f"{conditional}.pt"
        result = export(ckpt, "-o", onnx_file)
        assert result["inputs"] == (["z", "label"] if conditional else ["z"]) and result["max_abs_diff"] < ATOL
        inputs = {"z": z, "label": labels} if conditional else {"z": z}
        assert (ort(onnx_file, **inputs) - expected).abs().max() < ATOL
        export(ckpt, "--format", "torchscript", "-o", ts_file)
        scripted = torch.jit.load(str(ts_file))
        assert torch.allclose(scripted(*inputs.values()), expected, atol=ATOL)


@pytest.mark.parametrize("style", ["adain", "demod"])
def test_stylegan_generator_with_truncation_as_input_or_baked(tmp_path, style):
    G, ckpt = tiny_stylegan(tmp_path, style)
    seeds = [3, 4, 5]
    z, _ = sg_inference.seed_inputs(G, seeds)
    expected = sg_inference.generate(G, seeds, truncation=0.6, noise_seed=0)  # noise fixed as interpolate's
    export(ckpt, "-o", tmp_path / "g.onnx")
    got = ort(tmp_path / "g.onnx", z=z, truncation=torch.tensor([0.6]))
    assert got.shape == (3, 1, 16, 16) and (got - expected).abs().max() < ATOL
    export(ckpt, "--trunc", "0.6", "-o", tmp_path / "g06.onnx")
    assert (ort(tmp_path / "g06.onnx", z=z) - expected).abs().max() < ATOL
    export(ckpt, "--format", "torchscript", "-o", tmp_path / "g.pt")
    scripted = torch.jit.load(str(tmp_path / "g.pt"))
    assert torch.allclose(scripted(z, torch.tensor([0.6])), expected, atol=ATOL)


def test_a_conditional_stylegan_takes_a_label(tmp_path):
    torch.manual_seed(0)
    config = sg.StyleGANConfig(resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2, num_classes=3)
    G = sg.build(config).eval()
    with torch.no_grad():
        G.w_avg.normal_()  # one mean w per class, apart
    ckpt = save_model(tmp_path / "cond.safetensors", "stylegan", G, config, epoch=1, seed=0)
    seeds, labels = [3, 4, 5], torch.tensor([2, 0, 1])
    z, _ = sg_inference.seed_inputs(G, seeds)
    expected = sg_inference.generate(G, seeds, truncation=0.6, noise_seed=0, labels=labels)
    result = export(ckpt, "-o", tmp_path / "c.onnx")
    assert result["inputs"] == ["z", "label", "truncation"]
    assert (ort(tmp_path / "c.onnx", z=z, label=labels, truncation=torch.tensor([0.6])) - expected).abs().max() < ATOL
    export(ckpt, "--format", "torchscript", "--truncation", "0.6", "-o", tmp_path / "c.pt")
    scripted = torch.jit.load(str(tmp_path / "c.pt"))
    assert torch.allclose(scripted(z, labels), expected, atol=ATOL)
    assert not torch.allclose(scripted(z, torch.tensor([0, 0, 0])), expected, atol=1e-2)  # the label matters


def test_cyclegan_generators_take_any_image_size(tmp_path):
    model, ckpt = tiny_cyclegan(tmp_path)
    for direction, alias in (("a2b", "AtoB"), ("b2a", "BtoA")):
        export(ckpt, "--direction", alias, "-o", tmp_path / f"{direction}.onnx")
        export(ckpt, "--direction", direction, "--format", "torchscript", "-o", tmp_path / f"{direction}.pt")
        scripted = torch.jit.load(str(tmp_path / f"{direction}.pt"))
        for h, w in ((32, 32), (44, 60), (100, 28)):  # none of them the traced size
            image = torch.rand(2, 3, h, w)
            with torch.no_grad():
                expected = ((model.generator(direction)(image * 2 - 1) + 1) / 2).clamp(0, 1)
            got = ort(tmp_path / f"{direction}.onnx", image=image)
            assert got.shape == (2, 3, h, w) and (got - expected).abs().max() < ATOL
            assert torch.allclose(scripted(image), expected, atol=ATOL)


def test_fp16_safetensors_halves_the_weights_and_still_loads(tmp_path):
    from gencli.catalog import read_header
    from gencli.checkpoint import load_model

    model, ckpt = tiny_cyclegan(tmp_path)
    result = export(ckpt, "--format", "safetensors", "--fp16", "-o", tmp_path / "half.safetensors")
    assert result["models"][0]["origin"] == "path" and result["max_abs_diff"] < 1e-2
    header = read_header(tmp_path / "half.safetensors")
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}
    again, meta = load_model(tmp_path / "half.safetensors")
    assert meta["epoch"] == 1 and again.config == model.config


def test_export_refuses_what_does_not_apply(tmp_path, vae_ckpt):
    _, ckpt = tiny_cyclegan(tmp_path)
    result = run("export", vae_ckpt, "--truncation", "0.5", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "stylegan" in result.output
    result = run("export", ckpt, "--format", "tflite")
    assert result.exit_code == 2
    result = run("export", vae_ckpt, "--format", "safetensors", "-o", vae_ckpt)
    assert result.exit_code == 2 and not list(tmp_path.glob("*.onnx"))
    result = run("export", "no_such_model")
    assert result.exit_code == 1 and "no model named" in result.output


def test_default_output_name(tmp_path, monkeypatch):
    _, ckpt = tiny_cyclegan(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = export(ckpt, "--direction", "b2a")
    assert result["output"] == "cg_b2a.onnx" and (tmp_path / "cg_b2a.onnx").is_file()
    assert np.isfinite(result["max_abs_diff"])

