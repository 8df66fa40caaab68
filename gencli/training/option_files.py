"""options.json and `--config` files: a run's options document (`options_document`), the options a config
file gives (`read_config`, `config_values`), and those of a run being resumed (`run_options`), also from
the flat options.json that earlier versions wrote (`legacy_values`). Loads no torch."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from gencli.errors import GencliError, OptionError
from gencli.training.options import (CycleGANTraining, StyleGANTraining, TrainingOptions, VAETraining,
                                     json_type)

OPTIONS_FORMAT = 2  # options.json: {"format": 2, "options": {...}, ...}; runs before it wrote a flat dict


def options_document(options: TrainingOptions, family: str, *, resolved: dict, data: dict, config: dict) -> dict:
    """options.json of a run: the options whole, and beside them what the run resolved (device, precision
    and why, processes), the data's identity and the network config."""
    return {"format": OPTIONS_FORMAT, "family": family, "options": options.to_dict(), "resolved": resolved,
            "data": data, "config": config}


def config_values(cls: type[TrainingOptions], document: dict, family: str, where: str) -> dict:
    """The options a config file gives, as keyword arguments of `cls`: a flat object of option names (from
    JSON or TOML), or an options.json of a run (this version's, or the flat one of earlier versions)."""
    if not isinstance(document, dict):
        raise OptionError(f"{where} must hold an object of option names, got {json_type(document)}")
    held = document.get("family", family)
    if held != family:
        raise OptionError(f"{where} holds {held} options; use `gencli train {held}`")
    if "format" in document:
        if document["format"] != OPTIONS_FORMAT or not isinstance(document.get("options"), dict):
            raise OptionError(f"{where}: an options.json of format {document['format']!r}, which this gencli "
                              "does not read")
        values = dict(document["options"])
    elif "config" in document:  # an options.json of an earlier version
        values = legacy_values(cls, document, document.get("config") or {}, {})
    else:
        values = {k: v for k, v in document.items() if k != "family"}
    values.pop("family", None)
    return cls.given(values, where)


def read_config(path: Path, cls: type[TrainingOptions], family: str) -> dict:
    """--config FILE: the options it gives (JSON, or TOML for a .toml file)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise OptionError(f"cannot read --config {path}: {e.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            document = tomllib.loads(text)
        else:
            document = json.loads(text)
    except ValueError as e:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise OptionError(f"--config {path} is not valid {kind}: {str(e).splitlines()[0]}") from None
    return config_values(cls, document, family, f"--config {path}")


def run_options(cls: type[TrainingOptions], document: dict, family: str, where: str, *, config: dict,
                metadata: dict, seed: int) -> TrainingOptions:
    """The options of a run being resumed, from its options.json (`document`; {} when the run has none) and
    its model's config, metadata and seed, which fill in what an options.json of an earlier version lacks."""
    if "format" in document:
        values = config_values(cls, document, family, where)
    elif not document and cls is StyleGANTraining:  # its options are not in the model: do not guess them
        raise GencliError(f"nothing to resume: {where} does not exist")
    else:
        values = cls.given({"seed": seed, **legacy_values(cls, document, config, metadata)}, where)
    if family in ("vae", "cvae"):
        values["family"] = family
    return cls(**values)


def legacy_values(cls: type[TrainingOptions], old: dict, config: dict, metadata: dict) -> dict:
    """The options an options.json written before OPTIONS_FORMAT holds (a flat dict of the options under
    other names, with the resolved device and precision), as field values: the architecture comes from the
    network `config`, the rest from `old`; the device and precision are chosen again (as those runs did on
    resume)."""
    names = {f.name for f in fields(cls)}
    arch = [f.name for f in fields(cls) if f.metadata["arch"]]
    values = {k: v for k, v in old.items() if k in names and k not in ("device", "precision", "family")}
    values.update({k: config[k] for k in arch if k in config})
    if cls is VAETraining:
        if "dataset" in old:
            values["data"] = old["dataset"]
    elif cls is CycleGANTraining:
        # The old "load_size" is the size loaded; what was asked for (None: 1.12 x) is in the model metadata.
        values["load_size"] = metadata.get("load_size") if metadata else None
        values["max_images"] = metadata.get("max_images", old.get("max_images")) if metadata else old.get("max_images")
    elif cls is StyleGANTraining:
        values.update(kimg=old.get("last_kimg"), ticks=old.get("last_epochs"), cond=bool(config.get("num_classes")))
        values.pop("epochs", None)
    return values
