"""The `serve` command: the explorer page of gencli.serve. fastapi, uvicorn and torch are imported only
when the command runs, so `gencli --help` stays fast."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.shared import app, console


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def default_threads() -> int:
    """All CPU cores but one, so that a running translation leaves one core to the latent views."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def add_serve_command(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback exposes the page to the network.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        device: Annotated[str, typer.Option(help="Where to run the models: auto, cpu or cuda.")] = "cpu",
        runs_dir: Annotated[Path, typer.Option(help="Folder whose run folders (NAME/model.safetensors) are offered.")] = Path("runs"),
        data_dir: Annotated[Optional[Path], typer.Option(help="Data directory holding the test set for the latent scatter (default: $GENCLI_DATA_DIR, else a per-user cache).")] = None,
        threads: Annotated[Optional[int], typer.Option(help="CPU threads for the models (default: all cores but one).")] = None,
    ) -> None:
        r"""Explore the models in a local web page (needs pip install "gencli\[serve]").

        Latent planes, StyleGAN seeds and style mixing, CycleGAN translation; each image with its command.
        """
        from gencli.serve import INSTALL_HINT, missing_dependencies

        missing = missing_dependencies()
        if missing:
            console.print(f"Error: gencli serve needs {' and '.join(missing)}: {INSTALL_HINT}", markup=False,
                          soft_wrap=True)
            raise typer.Exit(1)
        if not 1 <= port <= 65535:
            console.print(f"Error: --port must be between 1 and 65535, got {port}", markup=False)
            raise typer.Exit(1)
        if threads is not None and threads < 1:
            console.print(f"Error: --threads must be positive, got {threads}", markup=False)
            raise typer.Exit(1)
        if not is_loopback(host):
            console.print(f"Warning: listening on {host}: anyone who can reach this machine can use the page "
                          "and its models; there is no login.", markup=False, soft_wrap=True)
        try:
            free = port_is_free(host, port)
        except (OSError, UnicodeError) as e:
            console.print(f"Error: cannot listen on {host}: {e}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        if not free:
            console.print(f"Error: port {port} on {host} is in use; choose another with --port", markup=False)
            raise typer.Exit(1)

        import torch

        from gencli.errors import GencliError
        from gencli.serve.app import run
        from gencli.serve.models import ModelStore

        torch.set_num_threads(threads or default_threads())
        try:
            store = ModelStore(runs_dir, device=device, data_dir=data_dir)
        except GencliError as e:
            console.print(f"Error: {e}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"gencli serve: http://{shown}:{port}/  ({len(store.scan())} models; Ctrl-C stops)",
                      markup=False)
        run(store, host, port)


add_serve_command(app)
