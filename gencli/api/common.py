"""Option parsing and checks shared by the commands of every family: the one table of what each numeric
option of the non-training commands accepts (`NUMBER_RULES`, of the rules in gencli.checks), checked by
`check_numbers`. The CLI runs it on every command's options before anything else (so a bad number is a
usage error, exit code 2, without loading torch); the library functions run it on their own arguments.
Training options check themselves (gencli.training.options). Loads no torch."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from gencli.checks import INT_LIMIT, NON_NEGATIVE, POSITIVE, SEED, SEED_LIMIT, UNIT, check_number  # noqa: F401
from gencli.errors import ConfigError, GencliError, OptionError

MAX_SEEDS = 100_000  # seeds in one list

# option (its Python name) -> its rule (gencli.checks)
NUMBER_RULES: dict[str, tuple] = {
    **{k: POSITIVE for k in ("n", "nrow", "steps", "resolution", "size", "tile")},
    **{k: NON_NEGATIVE for k in ("cutoff", "label", "log_every")},
    **{k: SEED for k in ("seed", "noise_seed")},
    "truncation": (UNIT[0], "must be between 0 and 1 (1 disables it)"),
}


def option_name(name: str) -> str:
    return "-n" if name == "n" else f"--{name.replace('_', '-')}"


def check_numbers(values: dict, names: dict[str, str] | None = None) -> None:
    """Check every number in `values` (option name -> value; None is 'not given'): floats must be finite,
    integers fit in 64 bits, and options of NUMBER_RULES obey their rule. `names` gives the option as the
    user spells it (default --python-name). Raises OptionError naming the option."""
    for key, value in values.items():
        check_number((names or {}).get(key) or option_name(key), value, NUMBER_RULES.get(key))


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


def training_options(cls, options=None, overrides: dict | None = None):
    """A training function's options: `options` (default cls()) with the keyword `overrides` of its fields
    applied; the result remembers what was set (TrainingOptions.set_values), which a resumed run checks."""
    if options is not None and not isinstance(options, cls):
        raise OptionError(f"the options must be a {cls.__name__}, got {type(options).__name__}")
    unknown = sorted(set(overrides or {}) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise TypeError(f"{cls.__name__} has no option {unknown[0]!r}")
    base = options.set_values() if options is not None else {}
    return cls.from_given({**base, **(overrides or {})}) if overrides or options is None else options


def train_or_plan(trainer, options, *, dry_run: bool, progress=None, on_skip=None, **run):
    """`trainer.train(options, ...)` (a module of gencli.training), or with `dry_run` its `plan`; `run`: the
    run folder, resume and overwrite. Config errors name the option that set the field."""
    with options_named():
        if dry_run:
            return trainer.plan(options, **run)
        skip = {} if on_skip is None else {"on_skip": on_skip}
        return trainer.train(options, progress=progress, **skip, **run)


@contextlib.contextmanager
def options_named():
    """Config errors raised while building a model from options name the option that set the field."""
    try:
        yield
    except ConfigError as e:
        raise e.as_option() from None
