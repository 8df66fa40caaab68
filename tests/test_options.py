"""The training options objects (gencli.training.options): every option through options.json, --config
files and the command line; config plus command line; --dry-run; runs written by the earlier flat
options.json still resume; the README's tables."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import one_line_error, run
from gencli import api
from gencli.errors import OptionError
from gencli.training.option_files import config_values, options_document, read_config, run_options
from gencli.training.options import (CycleGANTraining, StyleGANTraining, VAETraining, field_type, option_name,
                                     options_table, spelling)

# Every field set to a value other than its default (a test below checks that none is left out).
EVERY = {
    VAETraining: dict(family="cvae", data="fashion-mnist", data_dir=Path("some/data"), epochs=3, batch_size=16,
                      lr=0.002, lr_schedule="cosine", ema_decay=0.5, latent_dim=4, hidden=(8, 4), dropout=0.25,
                      seed=7, device="cpu", precision="fp32"),
    CycleGANTraining: dict(data="toy", data_dir=Path("some/data"), epochs=3, image_size=32, load_size=40, max_images=5,
                           ngf=4, n_blocks=2, ndf=4, gan_mode="vanilla", lambda_cycle=5.0, lambda_identity=0.25,
                           upsample="deconv", lr=0.0003, batch_size=2, seed=7, device="cpu", precision="fp32",
                           channels_last=True, annotate=True),
    StyleGANTraining: dict(data="fashion-mnist", data_dir=Path("some/data"), kimg=0.5, tick_kimg=0.25, batch_size=4,
                           resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2, style="demod",
                           skip_rgb=False, tanh_output=False, mbstd_group=2, lr=0.002, r1_gamma=0.5, r1_every=4,
                           mixing_prob=0.5, ema_kimg=1.0, mirror=True, init_from=Path("runs/source"),
                           freeze_mapping=True, freeze_d=1, cond=True, augment="color,translation,cutout", seed=7,
                           device="cpu",
                           precision="fp32"),
}
FAMILY = {VAETraining: "cvae", CycleGANTraining: "cyclegan", StyleGANTraining: "stylegan"}
# The StyleGAN options that only a StyleGAN2 network takes (--arch stylegan2), and ADA's.
STYLEGAN2_VALUES = dict(data="fashion-mnist", kimg=0.5, tick_kimg=0.25, batch_size=4, architecture="stylegan2",
                        resolution=16, channel_base=256, channel_max=16, z_dim=8, w_dim=8, mapping_layers=2,
                        augment="ada,color", ada_target=0.5, ada_kimg=50.0, device="cpu", precision="fp32")


def toml(values: dict) -> str:
    """A flat TOML document of `values` (strings, numbers, booleans, lists of integers)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return json.dumps(list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
    return "".join(f"{k} = {value(v)}\n" for k, v in values.items() if v is not None)


def cli_args(cls, values: dict) -> list[str]:
    """`values` as the command line of `gencli train` spells them."""
    args = []
    for f in dataclasses.fields(cls):
        if f.name not in values or not f.metadata["cli"]:
            continue
        v, flag = values[f.name], spelling(cls, f)
        if f.name == "augment" and "ada" in v.split(","):  # --augment takes a word after it: ada[,ops]
            args += ["--augment", v]
        elif field_type(cls, f.name)[0] is bool or "/" in (f.metadata["flag"] or "") or f.name == "augment":
            on, _, off = flag.partition("/")
            args += [on] if v else [off] if off else []
        elif f.metadata["flag"]:  # a value under another spelling (--arch)
            args += [flag, str(v)]
        else:
            args += [option_name(f.name), ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    return args


@pytest.mark.parametrize("cls", list(EVERY))
def test_every_field_is_covered_and_differs_from_its_default(cls):
    values = {**EVERY[cls], **(STYLEGAN2_VALUES if cls is StyleGANTraining else {})}
    assert set(values) | set(cls.LENGTH[1:]) == {f.name for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if f.name in values:
            assert values[f.name] != f.default, f.name


def test_stylegan2_options_on_the_command_line_equal_the_same_in_a_config_file(tmp_path):
    values = dict(STYLEGAN2_VALUES, data_dir=tmp_path)
    (tmp_path / "config.toml").write_text(toml(values))
    by_flags = dry_run("stylegan", *cli_args(StyleGANTraining, values), "--run-dir", tmp_path / "run")
    by_file = dry_run("stylegan", "--config", tmp_path / "config.toml", "--run-dir", tmp_path / "run")
    assert by_flags == by_file
    assert by_flags["options"]["channel_base"] == 256 and by_flags["options"]["ada_target"] == 0.5
    assert by_flags["config"]["img_resolution"] == 16 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("cls", list(EVERY))
def test_every_option_round_trips_through_options_json_and_config_files(cls, tmp_path):
    options = cls(**EVERY[cls])
    family = FAMILY[cls]
    document = json.loads(json.dumps(options_document(options, family, resolved={"device": "cpu"}, data={}, config={})))
    assert document["options"] == options.to_dict()
    assert run_options(cls, document, family, "options.json", config={}, metadata={}, seed=0) == options
    # The same as --config files: the run's options.json, a flat JSON object, a TOML file.
    (tmp_path / "options.json").write_text(json.dumps(document))
    (tmp_path / "flat.json").write_text(json.dumps(options.to_dict()))
    (tmp_path / "flat.toml").write_text(toml(EVERY[cls]))
    for name in ("options.json", "flat.json", "flat.toml"):
        given = read_config(tmp_path / name, cls, family)
        if cls is VAETraining:  # vae or cvae: the command names it
            given["family"] = family
        assert cls.from_given(given) == options, name


def test_stylegan_ticks_and_an_augment_subset_round_trip_too(tmp_path):
    assert StyleGANTraining(augment=True).augment == "color,translation,cutout"
    (tmp_path / "c.toml").write_text('augment = "cutout,color"\n')
    assert read_config(tmp_path / "c.toml", StyleGANTraining, "stylegan") == {"augment": "cutout,color"}
    with pytest.raises(OptionError, match="unknown --augment 'blur'"):
        StyleGANTraining(augment="blur")
    options = StyleGANTraining(ticks=3)
    assert StyleGANTraining.from_dict(json.loads(json.dumps(options.to_dict())), "x") == options
    assert options.total_ticks() == 3 and StyleGANTraining(kimg=1.0, tick_kimg=0.3).total_ticks() == 4


def dry_run(*args) -> dict:
    result = run("train", *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("cls", list(EVERY))
def test_every_option_on_the_command_line_equals_the_same_in_a_config_file(cls, tmp_path):
    values = dict(EVERY[cls], data_dir=tmp_path)
    if cls is CycleGANTraining:  # the data folder must exist
        values["data"] = str(tmp_path / "toy")
        (tmp_path / "toy").mkdir()
    if cls is StyleGANTraining:  # --init-from needs a real source model; its own test is in test_stylegan.py
        values.pop("init_from")
    family = FAMILY[cls]
    (tmp_path / "config.toml").write_text(toml({k: v for k, v in values.items() if k != "family"}))
    by_flags = dry_run(family, *cli_args(cls, values), "--run-dir", tmp_path / "run")
    by_file = dry_run(family, "--config", tmp_path / "config.toml", "--run-dir", tmp_path / "run")
    assert by_flags == by_file
    expected = cls(**values).to_dict()
    if cls is StyleGANTraining:  # the plan resolves the architecture (no --arch, no --init-from: gencli's)
        expected["architecture"] = "stylegan"
    assert by_flags["options"] == expected
    assert not (tmp_path / "run").exists()


def test_config_and_command_line_combine(tmp_path, data_dir):
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 3, "lr": 0.01, "batch_size": 32, "hidden": [8]}))
    plan = dry_run("vae", "--config", tmp_path / "c.json", "--epochs", 5, "--batch-size", 64, "--run-dir", tmp_path / "r")
    # The command line wins, even when it gives a default value (--batch-size 64); the file gives the rest.
    assert plan["options"]["epochs"] == 5 and plan["options"]["batch_size"] == 64
    assert plan["options"]["lr"] == 0.01 and plan["options"]["hidden"] == [8] and plan["config"]["hidden"] == [8]
    # Names as on the command line work in a file too, and TOML files take the same names.
    (tmp_path / "c.toml").write_text('lr-schedule = "cosine"\nlatent_dim = 3\n')
    plan = dry_run("vae", "--config", tmp_path / "c.toml", "--run-dir", tmp_path / "r")
    assert plan["options"]["lr_schedule"] == "cosine" and plan["config"]["latent_dim"] == 3
    # The architecture defaults are the network config's, and the plan says so.
    plan = dry_run("vae", "--run-dir", tmp_path / "r")
    assert plan["options"]["hidden"] == [512, 256] and plan["options"]["latent_dim"] == 2


@pytest.mark.parametrize("content, fragment", [
    ('{"epochs": 0}', "--epochs must be positive"),
    ('{"lr": "fast"}', "--lr must be a number"),
    ('{"learning_rate": 1}', "unknown option 'learning_rate'"),
    ('{"family": "stylegan"}', "holds stylegan options; use `gencli train stylegan`"),
    ('{"lr_schedule": "linear"}', "unknown --lr-schedule 'linear'"),
    ("[1, 2]", "must hold an object"),
    ("{", "not valid JSON"),
])
def test_bad_config_files_are_one_line_usage_errors(tmp_path, content, fragment):
    (tmp_path / "c.json").write_text(content)
    result = run("train", "vae", "--config", tmp_path / "c.json", "--run-dir", tmp_path / "r")
    assert result.exit_code == 2
    one_line_error(result, fragment)
    assert not (tmp_path / "r").exists()
    one_line_error(run("train", "vae", "--config", tmp_path / "missing.toml"), "cannot read --config")


def test_dry_run_writes_nothing(tmp_path, data_dir):
    before = sorted(tmp_path.rglob("*"))
    result = run("train", "vae", "--epochs", 2, "--data-dir", data_dir, "--run-dir", tmp_path / "r", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run (nothing written)" in result.output and str(tmp_path / "r") in result.output
    assert '"epochs": 2' in result.output and sorted(tmp_path.rglob("*")) == before
    # A resume is planned from the run's options, which it leaves as they were.
    api.train_vae(data_dir=data_dir, run_dir=tmp_path / "r", epochs=1, batch_size=50, hidden=(16,), device="cpu")
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*")}
    plan = dry_run("vae", "--resume", "--epochs", 3, "--data-dir", data_dir, "--run-dir", tmp_path / "r")
    assert plan["resume"] and plan["done"] == 1 and plan["epochs"] == 3
    assert plan["options"]["batch_size"] == 50 and plan["options"]["hidden"] == [16]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*")} == files


def test_resume_keeps_the_runs_options_and_refuses_a_different_one(tmp_path, data_dir):
    out = tmp_path / "r"
    api.train_vae(data_dir=data_dir, run_dir=out, epochs=1, batch_size=50, hidden=(16,), lr=2e-3, device="cpu")
    one_line_error(run("train", "vae", "--resume", "--epochs", 2, "--lr", 0.01, "--run-dir", out, "--data-dir", data_dir),
                   "--lr 0.01 differs from the run being resumed (0.002 in")
    # The same value again, the length, the device and the precision may be given.
    result = run("train", "vae", "--resume", "--epochs", 2, "--lr", 0.002, "--hidden", 16, "--batch-size", 50,
                 "--run-dir", out, "--data-dir", data_dir, "--device", "cpu", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    options = json.loads((out / "options.json").read_text())
    assert options["options"]["lr"] == 0.002 and options["options"]["epochs"] == 2
    assert options["resolved"]["precision"] == "fp32"
    # From Python: an options object set to another value is refused the same way (the fields it leaves
    # at their defaults count as not set).
    with pytest.raises(OptionError, match="--batch-size 32 differs"):
        api.train_vae(VAETraining(batch_size=32, epochs=3), run_dir=out, resume=True, data_dir=data_dir)


def test_python_api_takes_an_object_and_keyword_overrides():
    base = VAETraining(epochs=5, lr=0.01)
    plan = api.train_vae(base, epochs=7, dry_run=True, run_dir="nowhere/run")
    assert plan.options.epochs == 7 and plan.options.lr == 0.01 and plan.run_dir == Path("nowhere/run")
    assert not Path("nowhere").exists()
    with pytest.raises(TypeError, match="no option 'epoch'"):
        api.train_vae(epoch=3)
    with pytest.raises(OptionError, match="--epochs must be positive"):
        VAETraining(epochs=0)
    with pytest.raises(OptionError, match="must be a VAETraining"):
        api.train_vae(CycleGANTraining())


# --- runs written before options.json held the options object (generated with that version) -----------------

OLD_VAE = {
    "family": "cvae", "dataset": "mnist", "epochs": 1, "batch_size": 50, "lr": 0.002, "lr_schedule": "cosine",
    "ema_decay": 0.99, "seed": 4, "device": "cpu", "precision": "fp32", "precision_reason": "asked for",
    "config": {"image_size": 28, "hidden": [16], "latent_dim": 3, "num_classes": 10, "dropout": 0.0},
    "processes": 1, "global_batch_size": 50}
OLD_STYLEGAN = {
    "family": "stylegan", "data": "mnist", "batch_size": 8, "lr": 0.001, "r1_gamma": 0.0064, "r1_every": 2,
    "mixing_prob": 0.5, "ema_kimg": 10.0, "tick_kimg": 0.032, "mirror": False, "init_from": None,
    "freeze_mapping": False, "freeze_d": 0, "seed": 3, "augment": "color,translation,cutout",
    "config": {"resolution": 16, "channels": 1, "z_dim": 8, "w_dim": 8, "mapping_layers": 2, "mapping_lr_mul": 0.01,
               "widths": [16, 8, 8], "mbstd_group": 8, "skip_rgb": True, "style": "adain", "tanh_output": True,
               "num_classes": 10},
    "device": "cpu", "precision": "fp32", "precision_reason": "asked for", "images": 300, "last_kimg": 0.064,
    "last_epochs": None, "processes": 1, "global_batch_size": 8}
OLD_CYCLEGAN = {
    "family": "cyclegan", "data": "DATA", "epochs": 1, "lr": 0.0003, "batch_size": 1, "max_images": 2,
    "images": [2, 2], "seed": 2, "device": "cpu", "precision": "fp32", "precision_reason": "asked for",
    "load_size": 40, "channels_last": False,
    "config": {"image_size": 32, "ngf": 4, "n_blocks": 1, "dropout": False, "ndf": 4, "gan_mode": "lsgan",
               "lambda_cycle": 10.0, "lambda_identity": 0.25, "pool_size": 50, "directions": ["a2b", "b2a"],
               "upsample": "resize"},
    "processes": 1, "global_batch_size": 1}


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_a_vae_run_of_the_flat_format_resumes_with_its_options(tmp_path, data_dir):
    kw = dict(family="cvae", data_dir=data_dir, epochs=1, batch_size=50, hidden=(16,), latent_dim=3, lr=2e-3,
              lr_schedule="cosine", ema_decay=0.99, seed=4, device="cpu", precision="fp32")
    for name in ("old", "new"):
        api.train_vae(run_dir=tmp_path / name, **kw)
    (tmp_path / "old" / "options.json").write_text(json.dumps(OLD_VAE))
    # As a config file it gives that run's options.
    plan = dry_run("cvae", "--config", tmp_path / "old" / "options.json", "--run-dir", tmp_path / "again")
    assert {k: plan["options"][k] for k in ("lr", "lr_schedule", "ema_decay", "seed", "hidden", "latent_dim")} == \
        {"lr": 0.002, "lr_schedule": "cosine", "ema_decay": 0.99, "seed": 4, "hidden": [16], "latent_dim": 3}
    one_line_error(run("train", "cvae", "--resume", "--epochs", 2, "--seed", 5, "--run-dir", tmp_path / "old"),
                   "--seed 5 differs from the run being resumed (4 in")
    for name in ("old", "new"):
        result = run("train", "cvae", "--resume", "--epochs", 2, "--run-dir", tmp_path / name, "--data-dir", data_dir,
                     "--device", "cpu", "--precision", "fp32")
        assert result.exit_code == 0, result.output
    # The run of the old format went on exactly as the one of the new format, and now has the new format.
    assert same_weights(tmp_path / "old", tmp_path / "new")
    options = json.loads((tmp_path / "old" / "options.json").read_text())
    assert options["format"] == 2 and options["options"] == dict(json.loads((tmp_path / "new" / "options.json")
                                                                            .read_text())["options"])
    assert options["options"]["lr_schedule"] == "cosine" and options["options"]["epochs"] == 2


def test_a_stylegan_run_of_the_flat_format_resumes_with_its_options(tmp_path, data_dir):
    kw = dict(data="mnist", data_dir=data_dir, resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2,
              batch_size=8, kimg=0.064, tick_kimg=0.032, r1_every=2, mixing_prob=0.5, seed=3, cond=True,
              augment=True, device="cpu", precision="fp32")
    api.train_stylegan(run_dir=tmp_path / "old", **dict(kw, kimg=0.032))
    (tmp_path / "old" / "options.json").write_text(json.dumps(dict(OLD_STYLEGAN, last_kimg=0.032)))
    api.train_stylegan(run_dir=tmp_path / "old", resume=True, kimg=0.064, data_dir=data_dir, device="cpu",
                       precision="fp32")  # a run of the flat format chooses them again
    api.train_stylegan(run_dir=tmp_path / "straight", **kw)
    assert same_weights(tmp_path / "old", tmp_path / "straight")  # cond, augment, mixing_prob, seed: all kept
    options = json.loads((tmp_path / "old" / "options.json").read_text())["options"]
    assert options["cond"] is True and options["augment"] == "color,translation,cutout" and options["kimg"] == 0.064


def test_a_cyclegan_run_of_the_flat_format_resumes_with_its_options(tmp_path):
    from test_cyclegan import make_dataset

    root = make_dataset(tmp_path / "toy", n_a=2, n_b=2, n_test=1)
    kw = dict(data=str(root), epochs=1, image_size=32, ngf=4, n_blocks=1, ndf=4, lr=3e-4, seed=2, load_size=40,
              max_images=2, lambda_identity=0.25, device="cpu", precision="fp32")
    api.train_cyclegan(run_dir=tmp_path / "old", **kw)
    (tmp_path / "old" / "options.json").write_text(json.dumps(dict(OLD_CYCLEGAN, data=str(root))))
    api.train_cyclegan(run_dir=tmp_path / "old", resume=True, epochs=2, data=str(root), device="cpu",
                       precision="fp32")  # a run of the flat format chooses them again
    api.train_cyclegan(run_dir=tmp_path / "straight", **dict(kw, epochs=2))
    options = json.loads((tmp_path / "old" / "options.json").read_text())
    assert options["options"] == dict(json.loads((tmp_path / "straight" / "options.json").read_text())["options"])
    assert options["options"]["load_size"] == 40 and options["options"]["lambda_identity"] == 0.25


# --- the documentation follows the fields -------------------------------------------------------------------

@pytest.mark.parametrize("cls", list(EVERY))
def test_the_readme_tables_are_the_fields(cls):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    marker = f"<!-- options: {cls.__name__} -->\n"
    assert marker in readme, f"README lacks {marker.strip()}"
    table = readme.split(marker, 1)[1].split("\n\n", 1)[0]
    assert table == options_table(cls), "regenerate it: python3 -m gencli.training.options"


@pytest.mark.parametrize("cls", list(EVERY))
def test_the_architecture_defaults_the_help_names_are_the_network_configs(cls):
    """An architecture option's doc says its default, which lives in the network config (gencli.models)."""
    from gencli.registry import get_family

    config = get_family(FAMILY[cls] if cls is not VAETraining else "vae").default_config()
    for f in dataclasses.fields(cls):
        said = re.search(r"\(default ([^;:)]+)", f.metadata["doc"])
        if f.metadata["arch"] and said:
            value = getattr(config, f.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            assert said.group(1) in (shown, {True: "on", False: "off"}.get(value), shown.removesuffix(".0")), f.name


def test_a_config_names_the_family(tmp_path):
    document = options_document(VAETraining(family="cvae"), "cvae", resolved={}, data={}, config={})
    with pytest.raises(OptionError, match="holds cvae options"):
        config_values(VAETraining, document, "vae", "x")
