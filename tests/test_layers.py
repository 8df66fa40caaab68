"""The package imports one way: cli -> api -> training / inference / weights -> shared modules -> models ->
errors. Every import of every module is read with ast (those inside functions too), so neither an upward
import nor a circle can creep in, hidden or not."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gencli"

# Layer of each module (by its dotted name, or the package it is in), from the bottom up. A module may
# import modules of a lower layer, or of its own layer as long as no circle forms. Training draws its
# sample grids with inference, which never imports training: inference sits one step below.
LAYERS = {
    "gencli": 0,  # the package itself: __version__
    "gencli.errors": 1,
    "gencli.models": 2,
    **{f"gencli.{m}": 3 for m in ("catalog", "metrics", "perceptual", "files", "distributed", "losses", "download", "registry",
                                   "checkpoint", "data", "images", "runs", "checks")},
    "gencli.inference": 4,
    "gencli.weights": 5,
    "gencli.training": 5,
    "gencli.api": 6,
    "gencli.serve": 6,  # the explorer page's server: a second face of the library, beside the api
    "gencli.cli": 7,
    "gencli.__main__": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    while name not in LAYERS:
        if "." not in name:
            raise KeyError(name)
        name = name.rsplit(".", 1)[0]
    return LAYERS[name]


def gencli_imports(path: Path, modules: set[str]) -> set[str]:
    """The gencli modules `path` imports anywhere in its body: `from gencli.x import y` counts as
    gencli.x.y when that is a module, else as gencli.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "gencli"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gencli":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: gencli_imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_every_module_has_a_layer():
    for name in graph():
        layer(name)


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})"
              for name, deps in graph().items() for dep in deps if layer(dep) > layer(name)]
    assert not upward, "\n".join(upward)


def test_the_cli_reaches_the_library_through_the_api_alone():
    allowed = ("gencli", "gencli.errors", "gencli.api", "gencli.cli", "gencli.serve")
    bypass = [f"{name} imports {dep}" for name, deps in graph().items() if name.startswith("gencli.cli")
              for dep in deps if dep not in allowed and not dep.startswith(("gencli.cli.", "gencli.api.", "gencli.serve."))]
    assert not bypass, bypass


def test_no_import_circles():
    g = graph()
    # A package's __init__ importing its own submodules is how a package is assembled, not a circle.
    edges = {name: {d for d in deps if not d.startswith(name + ".")} for name, deps in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name):
        state[name] = 1
        stack.append(name)
        for dep in sorted(edges.get(name, ())):
            if state.get(dep) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)


def test_modules_stay_short():
    long = [f"{p.relative_to(PACKAGE)}: {n} lines" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450]
    assert not long, long
