"""The `gencli` command line. Each command module registers its commands on the apps of
gencli.cli.shared; importing them here assembles the CLI."""

from __future__ import annotations

import logging
import os
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
        exit_now(run())
    except SystemExit as e:
        exit_now(e.code)


def run() -> int:
    try:
        code = app(standalone_mode=False)
    except Exception as e:
        # Matched by name: recent Typer versions ship their own copy of click's exception classes.
        names = {cls.__name__ for cls in type(e).__mro__}
        if "NoArgsIsHelpError" in names:  # `gencli` or `gencli train` alone: the help is the answer
            message = e.format_message()
            if message:
                stdout.print(message, markup=False)
            return 0
        if "UsageError" in names:
            console.print(f"Error: {e.format_message()}", markup=False, soft_wrap=True)
            return 2
        if "Abort" in names:
            return 130
        raise
    return code if isinstance(code, int) else 0


def exit_now(code) -> None:
    """Exit with `code` once the output is flushed, without the interpreter's teardown when PyTorch was
    loaded: its libraries' destructors take half a second after the work is done. Only when nothing
    else runs (no other thread, no child process), so nothing is cut short; otherwise a normal exit."""
    import multiprocessing
    import threading

    if "torch" not in sys.modules or threading.active_count() > 1 or multiprocessing.active_children():
        sys.exit(code)
    if code is not None and not isinstance(code, int):  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe
            pass
    os._exit(code or 0)
