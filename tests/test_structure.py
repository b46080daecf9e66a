"""The code base's layout: import layers, no hidden cycles, no pointers outside it.

``LAYERS`` is the map of README "How the code is organised": a module may import only
modules of its own layer or below, so each layer can be read (and tested) without the
ones above it. A new module must be placed in a layer here.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tf_asgan"

LAYERS = {
    # 0 bottom: no tf_asgan imports, or only of this layer
    "errors": 0, "io": 0, "numerics": 0, "_tfgan": 0, "images": 0, "distribute": 0,
    "sources": 0, "digits": 0, "randomness": 0,
    # 1 math: pure functions of tensors
    "losses": 1, "perturbations": 1, "schedules": 1, "metrics": 1, "methods": 1,
    "methods.dat": 1, "methods.advas": 1,
    # 2 parts: networks, data, classifiers, checkpoints and exports
    "networks": 2, "networks.dcgan": 2, "networks.resnet": 2, "folders": 2, "data": 2,
    "classifiers": 2, "checkpoints": 2, "export": 2,
    # 3 model: the GAN and its train step
    "tracking": 3, "inputs": 3, "optimizers": 3, "gan": 3, "asgan": 3,
    # 4 evaluation, analysis and plots of a model
    "evaluation": 4, "callbacks": 4, "plots": 4, "analysis": 4, "benchmark": 4,
    # 5 configuration
    "config_fields": 5, "config_sections": 5, "config_methods": 5, "config": 5,
    # 6 assembly: from a configuration to a finished run
    "builder": 6, "rundir": 6, "training": 6, "study": 6, "overhead": 6,
    # the package's front door
    "__init__": 7,
}


def _modules():
    """``{dotted name relative to tf_asgan: path}`` of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(tree):
    """``(node, [tf_asgan module names it imports])`` for each import statement of
    ``tree`` that imports from tf_asgan (``""`` is the package itself)."""
    modules = _modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "tf_asgan"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tf_asgan":
            # ``from tf_asgan.x import y``: module x.y if it is one, else module x
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        targets = []
        for name in names:
            name = name[len("tf_asgan"):].lstrip(".")
            while name and name not in modules:
                name = name.rpartition(".")[0]
            targets.append(name)
        if targets:
            yield node, targets


def _function_imports(path):
    tree = ast.parse(path.read_text())
    inner = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner += [f"{path.name}:{node.lineno}" for node, _ in _imports(func)]
    return inner


def test_no_tf_asgan_import_inside_a_function():
    paths = list(PACKAGE.rglob("*.py")) + list((REPO / "scripts").glob("*.py"))
    inner = [hit for path in paths for hit in _function_imports(path)]
    assert inner == [], f"tf_asgan imported inside functions (hidden cycles): {inner}"


def test_every_module_has_a_layer_and_imports_only_its_layer_or_below():
    modules = _modules()
    assert sorted(set(modules) - set(LAYERS)) == [], "place new modules in LAYERS"
    upward = []
    for name, path in modules.items():
        for _node, targets in _imports(ast.parse(path.read_text())):
            upward += [f"{name} ({LAYERS[name]}) -> {t} ({LAYERS[t]})" for t in targets
                       if t and t != name and LAYERS[t] > LAYERS[name]
                       and not name.startswith(t + ".")]
    assert upward == []


def test_each_module_imports_on_its_own():
    # One interpreter (TensorFlow loaded once); every tf_asgan module is then imported
    # with no tf_asgan module loaded before it, so an import cycle or a module relying on
    # another's side effects fails here.
    names = sorted(n for n in _modules() if n != "__init__")
    script = "\n".join([
        "import importlib, sys",
        "import tensorflow",
        f"for name in {names!r}:",
        "    for key in [k for k in sys.modules if k == 'tf_asgan' or",
        "                k.startswith('tf_asgan.')]:",
        "        del sys.modules[key]",
        "    importlib.import_module('tf_asgan.' + name)",
        "print('imported', len(" + repr(names) + "))",
    ])
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(names)}" in result.stdout


@pytest.mark.parametrize("needle", ["STACK.md", "PAPER.md", "../shared", "shared/seeds",
                                    "seed paper", "seed 00"])
def test_no_file_points_outside_the_repository(needle):
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    texts = [p for p in tracked if p.endswith((".py", ".md", ".flags", ".toml", ".ini",
                                               ".cfg", ".txt", "Makefile"))]
    hits = [p for p in texts if p != "tests/test_structure.py"
            and needle in (REPO / p).read_text(errors="replace")]
    assert hits == []
