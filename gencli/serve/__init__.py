"""`gencli serve`: a local web page to explore the models by hand.

`app.py` is the FastAPI app (one static page and a small API), `models.py` the only module that
uses the rest of gencli, `cli.py` the `serve` command, `static/` the page (plain HTML, CSS and script,
served offline). The web dependencies come with the optional extra: pip install "gencli[serve]".
"""

from __future__ import annotations

import importlib.util

REQUIRED = ("fastapi", "uvicorn")  # import names; the "serve" extra installs them
INSTALL_HINT = 'pip install "gencli[serve]"'


def missing_dependencies() -> list[str]:
    """The web packages that are not installed (found without importing them)."""
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]
