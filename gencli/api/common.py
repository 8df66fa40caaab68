"""Option parsing and checks shared by the commands of every family."""

from __future__ import annotations

import contextlib

from gencli.errors import ConfigError, GencliError


def parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise GencliError(f"bad seed list {text!r}; write e.g. 0-63 or 1,5,9") from None
    if any(s < 0 for s in seeds):
        raise GencliError(f"bad seed list {text!r}: seeds are non-negative")
    return seeds


def parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None or text == "auto":
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise GencliError(f"bad --range {text!r}; write auto or LO,HI such as -3,3") from None
    if not lo < hi:
        raise GencliError(f"bad --range {text!r}: LO must be below HI")
    return lo, hi


def check_positive(**values: int | float) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise GencliError(f"--{name.replace('_', '-')} must be positive, got {value}")


def check_truncation(psi: float | None) -> None:
    if psi is not None and not 0 <= psi <= 1:
        raise GencliError(f"--truncation must be between 0 and 1 (1 disables it), got {psi}")


def check_train_precision(precision: str) -> None:
    """Training runs in auto, fp32 or bf16: fp16 would need loss scaling (bf16 has fp32's range)."""
    if precision == "fp16":
        raise GencliError("training supports --precision auto, fp32 or bf16 (fp16 is for translate)")
    if precision not in ("auto", "fp32", "bf16"):
        raise GencliError(f"unknown --precision {precision!r}; use auto, fp32 or bf16")


@contextlib.contextmanager
def options_named():
    """Config errors raised while building a model from options name the option that set the field."""
    try:
        yield
    except ConfigError as e:
        raise e.as_option() from None
