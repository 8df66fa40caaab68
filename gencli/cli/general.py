"""CLI commands about any checkpoint: `info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gencli.cli.shared import app, fails_cleanly, stdout


@app.command()
@fails_cleanly
def info(checkpoint: Annotated[Path, typer.Argument(help="A gencli .safetensors checkpoint.")]) -> None:
    """Print what a checkpoint holds: family, config, epoch, seed, version."""
    from gencli import api

    stdout.print(json.dumps(api.read_metadata(checkpoint), indent=2), markup=False)
