"""Model families: name -> the module of gencli.models that holds its config dataclass and build(), and
the commands it supports. Network modules are imported on first use (importlib, by name), so the
registry itself loads no torch."""

from __future__ import annotations

import dataclasses
import importlib
import math
import typing
from dataclasses import dataclass

from gencli.errors import GencliError


@dataclass(frozen=True)
class Family:
    name: str
    module_name: str  # defines build(config) and the config dataclass named by config_name
    config_name: str
    commands: frozenset[str]
    defaults: tuple[tuple[str, object], ...] = ()  # config fields that differ from the dataclass defaults
    kind: str = ""  # the family name commands know it by, when another (stylegan2 is a kind of stylegan)

    @property
    def module(self):
        return importlib.import_module(self.module_name)

    @property
    def config_cls(self):
        return getattr(self.module, self.config_name)

    def default_config(self, **overrides):
        return self.config_cls(**{**dict(self.defaults), **overrides})

    def config_from_dict(self, values: dict):
        return config_from_dict(self.config_cls, values)

    def build(self, config):
        return self.module.build(config)


MAX_SIZE = 1 << 20  # the largest integer a config field may hold (sizes, counts); more is a corrupt file


def _check_value(name: str, hint, value) -> object:
    """`value` of config field `name` as the dataclass declares it (JSON lists back to tuples); an error
    naming the field for a wrong type, a non-finite float, a negative or absurdly large integer, or a
    size of zero inside a tuple."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        if not isinstance(value, list):
            raise GencliError(f"{name} must be a list, got {json_type(value)}")
        values = tuple(_check_value(name, item, v) for v in value)
        if item is int and any(v == 0 for v in values):
            raise GencliError(f"{name} must hold positive sizes, got {list(values)}")
        return values
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not 0 <= value <= MAX_SIZE:
            raise GencliError(f"{name} must be between 0 and {MAX_SIZE}, got {value}")
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise GencliError(f"{name} must be a finite number, got {value}")
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:  # a type this check does not know: leave it to the dataclass
        ok = True
    if not ok:
        raise GencliError(f"{name} must be {getattr(hint, '__name__', hint)}, got {json_type(value)}")
    return value


def json_type(value) -> str:
    return {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def config_from_dict(cls, values: dict):
    """Rebuild a config dataclass from its JSON form (lists back to tuples), checking every field's type."""
    if not isinstance(values, dict):
        raise GencliError(f"a {cls.__name__} must be a JSON object, got {json_type(values)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise GencliError(f"unknown {cls.__name__} fields {sorted(unknown)}: checkpoint from a newer gencli?")
    kwargs = {key: _check_value(key, hints[key], value) for key, value in values.items()}
    return cls(**kwargs)


VAE_COMMANDS = frozenset({"train", "sample", "latent-grid", "reconstruct", "evaluate", "export"})

FAMILIES: dict[str, Family] = {
    "vae": Family("vae", "gencli.models.vae", "VAEConfig", VAE_COMMANDS),
    "cvae": Family("cvae", "gencli.models.vae", "VAEConfig", VAE_COMMANDS,
                   defaults=(("num_classes", 10),)),  # the digit label joins encoder input and latent
    "stylegan": Family("stylegan", "gencli.models.stylegan", "StyleGANConfig",
                       frozenset({"train", "sample", "style-mix", "interpolate", "project", "evaluate", "export"})),
    # NVIDIA's StyleGAN2 networks: imported (`gencli import-weights stylegan`) or trained by `train stylegan`
    "stylegan2": Family("stylegan2", "gencli.models.stylegan2", "StyleGAN2Config",
                        frozenset({"train", "sample", "style-mix", "interpolate", "project", "evaluate", "export"}),
                        kind="stylegan"),
    "cyclegan": Family("cyclegan", "gencli.models.cyclegan", "CycleGANConfig", frozenset({"train", "translate", "evaluate", "export"}),
                       defaults=(("upsample", "resize"),)),  # new models: no checkerboard (imports: deconv)
    "classifier": Family("classifier", "gencli.models.classifier", "ClassifierConfig", frozenset()),  # judges digits
}


def is_kind(held: str, wanted: str) -> bool:
    """Whether a model of family `held` is what a command asking for `wanted` takes (a stylegan2 is a stylegan)."""
    return held == wanted or FAMILIES[held].kind == wanted


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise GencliError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def require_command(family: str, command: str) -> Family:
    spec = get_family(family)
    if command not in spec.commands:
        able = [f for f, s in FAMILIES.items() if command in s.commands]
        raise GencliError(f"{command} does not apply to {family} models; it works with {', '.join(able)}")
    return spec
