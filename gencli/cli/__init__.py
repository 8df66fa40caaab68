"""The `gencli` command line. Each command module registers its commands on the apps of
gencli.cli.shared; importing them here assembles the CLI."""

from __future__ import annotations

import sys

# Imported in the order `gencli --help` lists their commands.
from gencli.cli import training, vae, general, cyclegan, stylegan, project, serve  # noqa: E401,F401,I001  (registers the commands)
from gencli.cli.allocator import keep_freed_memory
from gencli.cli.shared import app, console, stdout

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: usage errors (unknown option, bad value) become one line too."""
    keep_freed_memory()
    try:
        code = app(standalone_mode=False)
    except Exception as e:
        # Matched by name: recent Typer versions ship their own copy of click's exception classes.
        names = {cls.__name__ for cls in type(e).__mro__}
        if "NoArgsIsHelpError" in names:  # `gencli` or `gencli train` alone: the help is the answer
            message = e.format_message()
            if message:
                stdout.print(message, markup=False)
            sys.exit(0)
        if "UsageError" in names:
            console.print(f"Error: {e.format_message()}", markup=False, soft_wrap=True)
            sys.exit(2)
        if "Abort" in names:
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
