"""Option parsing and checks shared by the commands of every family: the one table of what each numeric
option accepts (`NUMBER_RULES`), checked by `check_numbers`. The CLI runs it on every command's options
before anything else (so a bad number is a usage error, exit code 2, without loading torch); the library
functions run it on their own arguments. Loads no torch."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from gencli.errors import ConfigError, OptionError

SEED_LIMIT = 2**32  # seeds are 0 .. 2^32 - 1, as NumPy's and StyleGAN2-ADA's generate.py's
MAX_SEEDS = 100_000  # seeds in one list
INT_LIMIT = 2**63  # every integer option fits in a signed 64-bit integer

POSITIVE = ("epochs", "batch_size", "lr", "latent_dim", "n", "nrow", "steps", "image_size", "ngf", "ndf", "n_blocks",
            "max_images", "kimg", "tick_kimg", "ema_kimg", "r1_every", "resolution", "z_dim", "w_dim",
            "mapping_layers", "mbstd_group", "size", "tile")
NON_NEGATIVE = ("lambda_cycle", "lambda_identity", "r1_gamma", "freeze_d", "cutoff", "label", "log_every")
SEEDS = ("seed", "noise_seed")

# option (its Python name) -> (test, what it must be)
NUMBER_RULES: dict[str, tuple] = {
    **{k: (lambda v: v > 0, "must be positive") for k in POSITIVE},
    **{k: (lambda v: v >= 0, "must be 0 or more") for k in NON_NEGATIVE},
    **{k: (lambda v: 0 <= v < SEED_LIMIT, f"must be a seed between 0 and {SEED_LIMIT - 1}") for k in SEEDS},
    "truncation": (lambda v: 0 <= v <= 1, "must be between 0 and 1 (1 disables it)"),
    "mixing_prob": (lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    "ema_decay": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "dropout": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
}


def option_name(name: str) -> str:
    return "-n" if name == "n" else f"--{name.replace('_', '-')}"


def check_numbers(values: dict, names: dict[str, str] | None = None) -> None:
    """Check every number in `values` (option name -> value; None is 'not given'): floats must be finite,
    integers fit in 64 bits, and options of NUMBER_RULES obey their rule. `names` gives the option as the
    user spells it (default --python-name). Raises OptionError naming the option."""
    for key, value in values.items():
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        shown = (names or {}).get(key) or option_name(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(f"{shown} must be a finite number, got {value}")
        if isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT:
            raise OptionError(f"{shown} is out of range, got {value}")
        rule = NUMBER_RULES.get(key)
        if rule is not None and not rule[0](value):
            raise OptionError(f"{shown} {rule[1]}, got {value}")


def check_positive(**values: int | float) -> None:
    """Each value must be positive (and finite); None counts as missing."""
    for name, value in values.items():
        if value is None or value <= 0:
            raise OptionError(f"{option_name(name)} must be positive, got {value}")
    check_numbers(values)


def check_truncation(psi: float | None) -> None:
    check_numbers({"truncation": psi})


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> list of seeds, each in [0, 2^32), at most MAX_SEEDS of them."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                if hi_i - lo_i + len(seeds) >= MAX_SEEDS:
                    raise OptionError(f"{option} {text!r} names more than {MAX_SEEDS} seeds")
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise OptionError(f"bad seed list {option} {text!r}; write e.g. 0-63 or 1,5,9") from None
    bad = [s for s in seeds if not 0 <= s < SEED_LIMIT]
    if bad:
        raise OptionError(f"bad seed list {option} {text!r}: seeds are between 0 and {SEED_LIMIT - 1}")
    if len(seeds) > MAX_SEEDS:
        raise OptionError(f"{option} {text!r} names more than {MAX_SEEDS} seeds")
    return seeds


def parse_seed_items(text: str, option: str = "--seeds") -> list[int | Path]:
    """Seeds and w files of `gencli project`, in order: '0-3,photo_w.safetensors' -> [0, 1, 2, 3,
    Path('photo_w.safetensors')]. An item ending in .safetensors is a w file; the others are seeds as
    parse_seeds reads them."""
    items: list[int | Path] = []
    for part in text.split(","):
        if part.strip().lower().endswith(".safetensors"):
            items.append(Path(part.strip()))
        else:
            items.extend(parse_seeds(part, option))
        if len(items) > MAX_SEEDS:
            raise OptionError(f"{option} {text!r} names more than {MAX_SEEDS} seeds")
    return items


def item_label(item: int | Path) -> str:
    """How a seed or a w file heads a grid row or column: '7', or the file's name without _w.safetensors."""
    if isinstance(item, Path):
        stem = item.name[: -len(".safetensors")] if item.name.lower().endswith(".safetensors") else item.stem
        return stem[:-2] if stem.endswith("_w") and len(stem) > 2 else stem
    return str(item)


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """'512,256' -> (512, 256); an OptionError naming `option` otherwise."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise OptionError(f"bad {option} {text!r}; write integers separated by commas, e.g. 512,256") from None


def check_scale(scale: int) -> None:
    if scale < 1:
        raise GencliError(f"--scale must be a positive whole number, got {scale}")


def check_train_precision(precision: str) -> None:
    """Training runs in auto, fp32 or bf16: fp16 would need loss scaling (bf16 has fp32's range)."""
    if precision == "fp16":
        raise OptionError("training supports --precision auto, fp32 or bf16 (fp16 is for translate)")
    if precision not in ("auto", "fp32", "bf16"):
        raise OptionError(f"unknown --precision {precision!r}; use auto, fp32 or bf16")


@contextlib.contextmanager
def options_named():
    """Config errors raised while building a model from options name the option that set the field."""
    try:
        yield
    except ConfigError as e:
        raise e.as_option() from None
