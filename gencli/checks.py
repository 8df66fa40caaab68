"""What a number option may hold: the rules that the option tables of every command refer to
(gencli.api.common's NUMBER_RULES for the commands, gencli.training.options for the training options),
and the one check of a number against them. Loads no torch."""

from __future__ import annotations

import math

from gencli.errors import OptionError

SEED_LIMIT = 2**32  # seeds are 0 .. 2^32 - 1, as NumPy's and StyleGAN2-ADA's generate.py's
INT_LIMIT = 2**63  # every integer option fits in a signed 64-bit integer

# A rule: (test, what the value must be).
POSITIVE = (lambda v: v > 0, "must be positive")
NON_NEGATIVE = (lambda v: v >= 0, "must be 0 or more")
SEED = (lambda v: 0 <= v < SEED_LIMIT, f"must be a seed between 0 and {SEED_LIMIT - 1}")
UNIT = (lambda v: 0 <= v <= 1, "must be between 0 and 1")
UNIT_OPEN = (lambda v: 0 <= v < 1, "must be in [0, 1)")


def check_number(shown: str, value, rule: tuple | None = None) -> None:
    """`value` of the option spelled `shown`: a float must be finite, an integer fit in 64 bits, and both
    obey `rule`. None (not given), booleans and other types pass. Raises OptionError naming the option."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f"{shown} must be a finite number, got {value}")
    if isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT:
        raise OptionError(f"{shown} is out of range, got {value}")
    if rule is not None and not rule[0](value):
        raise OptionError(f"{shown} {rule[1]}, got {value}")
