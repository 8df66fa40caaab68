"""Model families: name -> the module of gencli.models that holds its config dataclass and build(), and
the commands it supports. Network modules are imported on first use (importlib, by name), so the
registry itself loads no torch."""

from __future__ import annotations

import dataclasses
import importlib
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


def config_from_dict(cls, values: dict):
    """Rebuild a config dataclass from its JSON form (lists back to tuples)."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise GencliError(f"unknown {cls.__name__} fields {sorted(unknown)}: checkpoint from a newer gencli?")
    kwargs = {}
    for key, value in values.items():
        if isinstance(value, list) and typing.get_origin(hints[key]) is tuple:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


VAE_COMMANDS = frozenset({"train", "sample", "latent-grid", "reconstruct", "evaluate", "export"})

FAMILIES: dict[str, Family] = {
    "vae": Family("vae", "gencli.models.vae", "VAEConfig", VAE_COMMANDS),
    "cvae": Family("cvae", "gencli.models.vae", "VAEConfig", VAE_COMMANDS,
                   defaults=(("num_classes", 10),)),  # the digit label joins encoder input and latent
    "stylegan": Family("stylegan", "gencli.models.stylegan", "StyleGANConfig",
                       frozenset({"train", "sample", "style-mix", "interpolate", "export"})),
    "cyclegan": Family("cyclegan", "gencli.models.cyclegan", "CycleGANConfig", frozenset({"train", "translate", "export"})),
}


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
