"""The training options of each family as one typed dataclass: `VAETraining`, `CycleGANTraining`,
`StyleGANTraining`. Loads no torch, so that the command line is built from these fields at once.

Each field is one option, declared once: its name (the command-line option is --name-with-dashes), type,
default, help text (`doc`) and check (`rule`: a rule of gencli.checks; `choices`). The command line
(gencli.cli.training) makes its options from the fields, gencli.api and gencli.training take the object,
and options.json stores it whole (`to_dict`) beside what the run resolved, so `--resume` reads back the
same type and an options.json serves as a `--config` file (gencli.training.option_files).

Architecture fields stay in the network configs of gencli.models (`VAEConfig`, `CycleGANConfig`,
`StyleGANConfig`): the options that set them (`arch=True`) default to None, which means the network
config's default (gencli.registry.Family.default_config, a default derived from other options where the
doc says so, or with StyleGAN's --init-from the source model's); the run writes the values it used.

On `--resume` the run's options hold (`on_resume="keep"`: a different value given is refused); the
length, the device, the precision, the data directory and what changes no result (`on_resume="call"`)
come from the resuming call. To extend a family, add a field with `option(...)` and read it in its
trainer; the command line, options.json, --config and the README table follow.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from gencli.checks import NON_NEGATIVE, POSITIVE, SEED, UNIT, UNIT_OPEN, check_number
from gencli.errors import OptionError

AUGMENTS = ("color", "translation", "cutout")  # `--augment`: DiffAugment's policy for small data sets
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")  # training: fp16 would need loss scaling (bf16 has fp32's range)


def option(default, doc: str, *, rule: tuple | None = None, choices: tuple[str, ...] | None = None,
           arch: bool = False, on_resume: str = "keep", flag: str | None = None, cli: bool = True,
           parse=None):
    """A field of a training-options dataclass. `rule`: a number rule of gencli.checks (applied to each item
    of a tuple); `choices`: the values a string may take; `arch`: it sets the network config field of the
    same name (None: the config's default); `on_resume`: "keep" (the run's value holds) or "call" (this
    call's value is used); `flag`: the command-line spelling of a boolean ("--cond", "--a/--b");
    `cli`: False keeps it off the command line; `parse`: turns a given value into the field's type."""
    return field(default=default, metadata=dict(doc=doc, rule=rule, choices=choices, arch=arch,
                                                on_resume=on_resume, flag=flag, cli=cli, parse=parse))


def option_name(name: str) -> str:
    """The command-line spelling of field `name`."""
    return "--" + name.replace("_", "-")


def spelling(cls, f: dataclasses.Field) -> str:
    """How the command line spells field `f` of `cls`: --name, or for a boolean --name/--no-name (or its `flag`)."""
    if f.metadata["flag"]:
        return f.metadata["flag"]
    if field_type(cls, f.name)[0] is bool:
        return f"{option_name(f.name)}/--no-{f.name.replace('_', '-')}"
    return option_name(f.name)


def parse_augment(policy: str | bool | None) -> str:
    """`--augment` as stored: "" (off), or a comma list of AUGMENTS (True: all three), possibly with "ada"
    first: adaptive augmentation (Karras et al. 2020) over the operations listed (none listed: all three)."""
    if policy is True:
        return ",".join(AUGMENTS)
    if policy is False:
        return ""
    if policy is not None and not isinstance(policy, str):
        raise OptionError(f"--augment must be true, false, ada or a comma list of {', '.join(AUGMENTS)}, "
                          f"got {policy!r}")
    parts = [p.strip() for p in (policy or "").split(",") if p.strip()]
    unknown = [p for p in parts if p not in AUGMENTS + ("ada",)]
    if unknown:
        raise OptionError(f"unknown --augment {unknown[0]!r}; use ada, or any of {', '.join(AUGMENTS)}")
    ops = [p for p in parts if p != "ada"]
    return ",".join((["ada"] if "ada" in parts else []) + ops)


def augment_ops(policy: str) -> tuple[bool, str]:
    """(adaptive, the DiffAugment operations) of a stored --augment: "ada" alone means all three."""
    parts = [p for p in policy.split(",") if p]
    ada = "ada" in parts
    ops = [p for p in parts if p != "ada"]
    return ada, ",".join(ops or (list(AUGMENTS) if ada else []))


def json_type(value) -> str:
    return {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def field_type(cls, name: str) -> tuple[Any, bool]:
    """(the field's type without None, whether None is allowed)."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


class TrainingOptions:
    """What every family's options share: checks, conversion to and from JSON, and the resume rule."""

    command: ClassVar[str]  # `gencli train COMMAND`
    LENGTH: ClassVar[tuple[str, ...]] = ("epochs",)  # the fields that say how long to train

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            meta, shown = f.metadata, option_name(f.name)
            if meta["parse"] is not None:
                value = meta["parse"](value)
            value = _normalize(value, *field_type(type(self), f.name))
            setattr(self, f.name, value)
            if meta["choices"] and value is not None and value not in meta["choices"]:
                raise OptionError(f"unknown {shown} {value!r}; use {' or '.join(meta['choices'])}")
            for item in value if isinstance(value, tuple) else (value,):
                check_number(shown, item, meta["rule"])
        self.check()

    def check(self) -> None:
        """Checks that involve several fields (a family overrides it)."""

    # --- to and from JSON ---
    def to_dict(self) -> dict:
        """Every field, as JSON values (paths as strings, tuples as lists)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: dict, where: str):
        """The options that `values` (field name -> JSON value) give, the rest at their defaults; errors name
        the option and `where` the values come from."""
        return cls(**cls.given(values, where))

    @classmethod
    def given(cls, values: dict, where: str) -> dict:
        """`values` (field name -> JSON value) checked against the fields' types, as keyword arguments."""
        if not isinstance(values, dict):
            raise OptionError(f"{where} must hold an object of option names, got {json_type(values)}")
        known = {f.name: f for f in fields(cls)}
        out = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known or not known[name].metadata["cli"] and name != "family":
                raise OptionError(f"{where}: unknown option {key!r} of `gencli train {cls.command}`")
            out[name] = _typed(cls, name, value, where)
        return out

    def resumed(self, given: dict, where: str):
        """These options (a run's) with `given` (options of the call that resumes it) applied: the length and
        the fields marked on_resume="call" take the given value; any other must equal the run's."""
        base = self
        if any(k in given for k in self.LENGTH):  # a new length replaces the run's (--kimg or --ticks)
            defaults = {f.name: f.default for f in fields(self) if f.name in self.LENGTH}
            base = dataclasses.replace(self, **defaults)
        new = dataclasses.replace(base, **given)
        meta = {f.name: f.metadata for f in fields(self)}
        for key in given:
            if key not in self.LENGTH and meta[key]["on_resume"] != "call" and getattr(new, key) != getattr(self, key):
                raise OptionError(f"{option_name(key)} {_shown(getattr(new, key))} differs from the run being resumed "
                                  f"({_shown(getattr(self, key))} in {where}); a resumed run keeps its options: "
                                  f"drop {option_name(key)}, or start a new run")
        return new

    @classmethod
    def from_given(cls, given: dict):
        """Options made of `given` (field name -> value), the rest at their defaults, that remember which
        were given: what a command line and a config file set, even to a default value."""
        options = cls(**given)
        options._given = frozenset(given)
        return options

    def set_values(self) -> dict:
        """The options set: those given to from_given, else the fields that differ from their defaults."""
        names = getattr(self, "_given", None)
        if names is None:
            names = [f.name for f in fields(self) if getattr(self, f.name) != f.default]
        return {name: getattr(self, name) for name in names}

    def arch(self) -> dict:
        """The network config fields these options set (those not None)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata["arch"] and getattr(self, f.name) is not None}

    def with_config(self, config):
        """These options with every architecture field as the network `config` has it (what the run uses)."""
        return dataclasses.replace(self, **{f.name: getattr(config, f.name) for f in fields(self) if f.metadata["arch"]})


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _normalize(value, base, optional: bool):
    """Python-API values to the field's type: lists to tuples, strings to paths, integers to floats."""
    if value is None:
        return value
    if typing.get_origin(base) is tuple and isinstance(value, list):
        return tuple(value)
    if base is Path and isinstance(value, str):
        return Path(value)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _typed(cls, name: str, value, where: str):
    """JSON `value` of field `name`, or an OptionError naming the option and `where`."""
    base, optional = field_type(cls, name)
    meta = next(f.metadata for f in fields(cls) if f.name == name)
    if meta["parse"] is not None:
        return meta["parse"](value)
    shown = option_name(name)
    if value is None:
        if optional:
            return None
        ok = False
    elif typing.get_origin(base) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    elif base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif base in (str, Path):
        ok = isinstance(value, str)
        value = Path(value) if ok and base is Path else value
    else:
        ok = True
    if not ok:
        want = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                Path: "a path"}.get(base, "a list of integers")
        raise OptionError(f"{where}: {shown} must be {want}, got {json_type(value)}")
    return value


# --- the families ---------------------------------------------------------------------------------------

DATA_DIR_DOC = "Data directory (default: $GENCLI_DATA_DIR, else a per-user cache)."
SEED_DOC = "Random seed."
DEVICE_DOC = "Where to run: auto picks CUDA when available."
PRECISION_DOC = "auto (bf16 autocast on CUDA or a CPU with native bf16, else fp32), fp32 or bf16."


@dataclass
class VAETraining(TrainingOptions):
    """`gencli train vae|cvae`: Adam on the negative ELBO, with a weight average that is evaluated and saved."""

    command: ClassVar[str] = "vae"

    family: str = option("vae", "vae, or cvae (conditional on the digit label): the command's name.",
                         choices=("vae", "cvae"), cli=False)
    data: str = option("mnist", "The data set.", choices=("mnist", "fashion-mnist"))
    data_dir: Path | None = option(None, DATA_DIR_DOC, on_resume="call")
    epochs: int = option(50, "Epochs to train (in all, when resuming).", rule=POSITIVE, on_resume="call")
    batch_size: int = option(64, "Images per step (per process under torchrun).", rule=POSITIVE)
    lr: float = option(1e-3, "Adam learning rate.", rule=POSITIVE)
    lr_schedule: str = option("constant", "constant, or cosine (lr down to lr/100 over the run).",
                              choices=("constant", "cosine"))
    ema_decay: float = option(0.9999, "Per-step decay of the weight average that is evaluated and saved; 0 turns it off.",
                              rule=UNIT_OPEN)
    latent_dim: int | None = option(None, "Size of the latent code (default 2); 2 can be plotted.", rule=POSITIVE,
                                    arch=True)
    hidden: tuple[int, ...] | None = option(None, "Encoder widths, comma-separated (default 512,256); the decoder "
                                                  "mirrors them.", rule=POSITIVE, arch=True)
    dropout: float | None = option(None, "Dropout after every hidden layer while training (default 0: off).",
                                   rule=UNIT_OPEN, arch=True)
    seed: int = option(0, SEED_DOC, rule=SEED)
    device: str = option("auto", DEVICE_DOC, choices=DEVICES, on_resume="call")
    precision: str = option("auto", PRECISION_DOC, choices=PRECISIONS, on_resume="call")

    def check(self) -> None:
        if self.hidden is not None and not self.hidden:
            raise OptionError("--hidden must be positive widths such as 512,256, got none")


@dataclass
class CycleGANTraining(TrainingOptions):
    """`gencli train cyclegan`: two generators against two PatchGAN discriminators (Zhu et al. 2017)."""

    command: ClassVar[str] = "cyclegan"

    data: str = option("monet2photo", "Data set name in the data directory (e.g. monet2photo) or a folder holding "
                                      "trainA, trainB (testA, testB).")
    data_dir: Path | None = option(None, DATA_DIR_DOC, on_resume="call")
    epochs: int = option(200, "Epochs in all (also when resuming): constant LR for the first half, then linear "
                              "decay to 0.", rule=POSITIVE, on_resume="call")
    image_size: int | None = option(None, "Training crop in pixels (default 256; images are resized to 1.12x, then "
                                          "cropped); 128 or 64 for CPU runs.", arch=True)
    load_size: int | None = option(None, "Resize training images to N pixels before the random crop (default 1.12 x "
                                         "--image-size); e.g. 286 with --image-size 128 trains on patches at "
                                         "full-image scale.")
    max_images: int | None = option(None, "Train on a random subset of at most N images per domain.", rule=POSITIVE)
    ngf: int | None = option(None, "Generator width, the channels of the first conv (default 64).", rule=POSITIVE,
                             arch=True)
    n_blocks: int | None = option(None, "Residual blocks in each generator (default: 9 at 256 px and above, else 6).",
                                  rule=POSITIVE, arch=True)
    ndf: int | None = option(None, "Discriminator width, the channels of the first conv (default 64).",
                             rule=POSITIVE, arch=True)
    gan_mode: str | None = option(None, "Adversarial loss: least squares or the original sigmoid cross-entropy "
                                        "(default lsgan).", choices=("lsgan", "vanilla"), arch=True)
    lambda_cycle: float | None = option(None, "Weight of the cycle-consistency L1 losses (default 10).",
                                        rule=NON_NEGATIVE, arch=True)
    lambda_identity: float | None = option(None, "Identity L1 weight as a fraction of --lambda-cycle (default 0.5; "
                                                 "0 disables it).", rule=NON_NEGATIVE, arch=True)
    upsample: str | None = option(None, "Decoder upsampling: resize (nearest x2 + 3x3 conv, no checkerboard) or "
                                        "deconv (the paper's transposed convs) (default resize).",
                                  choices=("resize", "deconv"), arch=True)
    lr: float = option(2e-4, "Adam learning rate (betas 0.5, 0.999).", rule=POSITIVE)
    batch_size: int = option(1, "Images per domain per step (per process under torchrun).", rule=POSITIVE)
    seed: int = option(0, SEED_DOC, rule=SEED)
    device: str = option("auto", DEVICE_DOC, choices=DEVICES, on_resume="call")
    precision: str = option("auto", PRECISION_DOC, choices=PRECISIONS, on_resume="call")
    channels_last: bool = option(False, "Use the channels-last memory format.", on_resume="call")
    annotate: bool = option(False, "Head the columns of the sample grids: real A, fake B, rec A, real B, fake A, "
                                   "rec B.", on_resume="call")

    def check(self) -> None:
        size = self.image_size
        if size is not None and (size % 4 or size < 32):
            raise OptionError(f"--image-size must be a multiple of 4 and at least 32, got {size}")


@dataclass
class StyleGANTraining(TrainingOptions):
    """`gencli train stylegan` (Karras et al. 2019, App. C): the length in thousands of images (kimg), run as
    ticks of --tick-kimg; --init-from fine-tunes another run's networks."""

    command: ClassVar[str] = "stylegan"
    LENGTH: ClassVar[tuple[str, ...]] = ("kimg", "ticks")

    data: str = option("mnist", "mnist, fashion-mnist (padded to 32 px), or a folder of images (with --cond: one "
                                "subfolder per class).")
    data_dir: Path | None = option(None, DATA_DIR_DOC, on_resume="call")
    kimg: float | None = option(None, "Thousands of training images in all (default 100).", rule=POSITIVE,
                                on_resume="call")
    ticks: int | None = option(None, "Or: ticks to train in all (each --tick-kimg thousand images).", rule=POSITIVE,
                               on_resume="call")
    tick_kimg: float = option(4.0, "Thousands of images per tick: metrics, sample grid, checkpoint.", rule=POSITIVE)
    batch_size: int = option(32, "Images per step (per process under torchrun).", rule=POSITIVE)
    resolution: int | None = option(None, "Image size, a power of two (default 32; stylegan2 64).", arch=True)
    widths: tuple[int, ...] | None = option(None, "Channels at 4, 8, ..., RES px, e.g. 128,128,64,32 (default: by "
                                                  "resolution).", arch=True)
    z_dim: int | None = option(None, "Size of z (default 128).", arch=True)
    w_dim: int | None = option(None, "Size of w (default 128).", arch=True)
    mapping_layers: int | None = option(None, "Layers of the mapping network (default 8).", arch=True)
    style: str | None = option(None, "How w styles each layer: adain (the paper) or demod (StyleGAN2's weight "
                                     "demodulation) (default adain).", choices=("adain", "demod"), arch=True)
    skip_rgb: bool | None = option(None, "StyleGAN2's skip generator: a to-RGB at every resolution, summed "
                                         "(default on).", flag="--skip-rgb/--no-skip-rgb", arch=True)
    tanh_output: bool | None = option(None, "tanh on the generator's output (default: on for mnist and "
                                            "fashion-mnist, off for folders).", flag="--tanh-output/--linear-output",
                                      arch=True)
    mbstd_group: int | None = option(None, "Images per minibatch-standard-deviation group in D (default: the batch "
                                           "size, at most 32).", arch=True)
    lr: float | None = option(None, "Adam learning rate (mapping network x0.01) (default 0.001, the paper's at 32 px; "
                                    "stylegan2: 0.0025, NVIDIA's).", rule=POSITIVE)
    r1_gamma: float | None = option(None, "R1 weight gamma (default 0.0002 res^2 / batch).", rule=NON_NEGATIVE)
    r1_every: int = option(16, "Lazy regularization: R1 every this many steps.", rule=POSITIVE)
    mixing_prob: float = option(0.9, "Probability of style-mixing regularization.", rule=UNIT)
    ema_kimg: float | None = option(None, "Half-life of the generator's moving average, in thousands of images "
                                          "(default 10; stylegan2: batch x 10 / 32, NVIDIA's).", rule=POSITIVE)
    mirror: bool | None = option(None, "Random x-flips (default: on for folders, off for digits).",
                                 flag="--mirror/--no-mirror")
    architecture: str | None = option(None, "stylegan (gencli's network) or stylegan2 (NVIDIA's, trained with their "
                                            "objective) (default: the --init-from network's, else stylegan).",
                                      choices=("stylegan", "stylegan2"), flag="--arch")
    channel_base: int | None = option(None, "stylegan2 from scratch: channels at r px are min(BASE / r, "
                                            "--channel-max) (default 16384; e.g. 2048 on a CPU).", rule=POSITIVE)
    channel_max: int | None = option(None, "stylegan2 from scratch: the most channels of a layer (default 512).",
                                     rule=POSITIVE)
    init_from: Path | None = option(None, "Transfer learning: start from this model's G, D and EMA: a stylegan run, "
                                          "or a stylegan2 checkpoint with its discriminator (a model name such as "
                                          "ffhq-res256, a file or a run folder).")
    freeze_mapping: bool = option(False, "Keep the mapping network fixed (with --init-from).")
    freeze_d: int = option(0, "Freeze-D: keep D's first N blocks (and from-RGB) fixed.", rule=NON_NEGATIVE)
    cond: bool = option(False, "Class-conditional (StyleGAN2-ADA): on the labels of mnist / fashion-mnist, or a "
                               "folder's class subfolders.", flag="--cond")
    augment: str = option("", "DiffAugment (color, translation, cutout) on real and fake images before D, for small "
                              "data sets (a config may name some: \"color,cutout\"). --augment ada (stylegan2): ADA, each "
                              "applied with an adaptive probability p.", flag="--augment/--no-augment",
                          parse=parse_augment)
    ada_target: float = option(0.6, "--augment ada: the target of r_t = E[sign D(real)]; p rises while r_t is above.",
                               rule=UNIT)
    ada_kimg: float | None = option(None, "--augment ada: thousands of images for p to move by 1 (default 500; with "
                                          "--init-from 100, as NVIDIA's).", rule=POSITIVE)
    seed: int = option(0, SEED_DOC, rule=SEED)
    device: str = option("auto", DEVICE_DOC, choices=DEVICES, on_resume="call")
    precision: str = option("auto", PRECISION_DOC, choices=PRECISIONS, on_resume="call")

    def check(self) -> None:
        if self.kimg is not None and self.ticks is not None:
            raise OptionError("give --kimg or --ticks, not both")

    def total_ticks(self) -> int:
        """Ticks to train in all: --ticks, or --kimg (default 100) in ticks of --tick-kimg, rounded up."""
        if self.ticks is not None:
            return self.ticks
        kimg = 100.0 if self.kimg is None else self.kimg
        return max(1, math.ceil(kimg / self.tick_kimg - 1e-9))


FAMILY_OPTIONS: dict[str, type[TrainingOptions]] = {"vae": VAETraining, "cvae": VAETraining,
                                                    "cyclegan": CycleGANTraining, "stylegan": StyleGANTraining}


# --- documentation ------------------------------------------------------------------------------------------

def options_table(cls: type[TrainingOptions]) -> str:
    """The Markdown table of `cls`'s command-line options (README, "Training options")."""
    rows = ["| option | default | on --resume | meaning |", "| --- | --- | --- | --- |"]
    for f in fields(cls):
        meta = f.metadata
        if not meta["cli"]:
            continue
        shown = spelling(cls, f)
        if meta["choices"]:
            shown += " " + "\\|".join(meta["choices"])
        default = "-" if f.default is None else f"`{_shown(f.default) if f.default != '' else 'off'}`"
        if isinstance(f.default, bool):
            default = "on" if f.default else "off"
        resume = "this call's" if meta["on_resume"] == "call" or f.name in cls.LENGTH else "the run's"
        rows.append(f"| `{shown}` | {default} | {resume} | {meta['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m gencli.training.options: the README's tables
    for options in (VAETraining, CycleGANTraining, StyleGANTraining):
        print(f"<!-- options: {options.__name__} -->\n{options_table(options)}\n")
