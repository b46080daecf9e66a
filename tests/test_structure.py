"""The code base's layout: import layers by folder, no hidden cycles, no pointers outside.

``LAYERS`` places each top-level module and each folder (its modules and ``__init__``)
of ``tf_asgan`` on a layer; it is the map of docs/architecture.md. A module may import
only from its own unit (module or folder), from units of its own layer, or from units of
lower layers; so each layer can be read, and tested, without the ones above it. A new
top-level module or folder must be placed here.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
while not (REPO / "tf_asgan").is_dir():
    REPO = REPO.parent
PACKAGE = REPO / "tf_asgan"

LAYERS = {
    # 0 plumbing: errors, the run-directory layout, utils/ (io, images, distribute,
    #   non-finite checks, SavedModel reading, TF-GAN's import)
    "errors": 0, "layout": 0, "utils": 0,
    # 1 math: pure functions of tensors; the sibling methods; D's regularisers;
    #   migrations of old runs
    "randomness": 1, "losses": 1, "perturbations": 1, "schedules": 1, "methods": 1,
    "regularizers": 1, "legacy": 1,
    # 2 parts: networks, data, the generator export
    "networks": 2, "data": 2, "export": 2,
    # 3 model: the GAN and its train step
    "tracking": 3, "inputs": 3, "optimizers": 3, "ema": 3, "gan": 3, "asgan": 3,
    # 4 measuring a model: metrics and evaluation, the paper's analyses
    "evaluation": 4, "analysis": 4,
    # 5 configuration
    "config": 5,
    # 6 from a configuration to a finished run
    "training": 6,
    # 7 experiments that use the library
    "experiments": 7,
    # the package's front door
    "__init__": 8,
}


def _unit(name):
    """The layer unit of dotted module name ``name``: its top-level module or folder."""
    return name.split(".")[0]


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
    assert sorted({_unit(n) for n in modules} - set(LAYERS)) == [], \
        "place new top-level modules and folders in LAYERS"
    upward = []
    for name, path in modules.items():
        layer = LAYERS[_unit(name)]
        for _node, targets in _imports(ast.parse(path.read_text())):
            upward += [f"{name} ({layer}) -> {t} ({LAYERS[_unit(t)]})" for t in targets
                       if t and _unit(t) != _unit(name) and LAYERS[_unit(t)] > layer]
    assert upward == []


def test_folders_are_layers_of_the_plan():
    # Every folder of the package is a unit of LAYERS (not a drawer of loose modules),
    # and the top level holds no more than the method and the plumbing named there.
    folders = sorted(p.name for p in PACKAGE.iterdir()
                     if p.is_dir() and (p / "__init__.py").exists())
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert set(folders) <= set(LAYERS) and set(top) <= set(LAYERS)
    assert {"data", "evaluation", "config", "training", "analysis", "experiments"} <= set(folders)


@pytest.mark.slow
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


@pytest.mark.slow
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
