"""setup.py states ranges (installable beside a researcher's own environment); the exact
versions tested live in constraints.txt, which `make install` (so `make test`, `make demo`
and CI) installs with."""

import ast
import importlib.metadata
import os
import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from helpers import REPO

# Needed in some version range only from above (tensorflow-hub imports pkg_resources,
# which setuptools 81 dropped): the one requirement without a lower bound.
UPPER_BOUND_ONLY = {"setuptools"}


def setup_requirements():
    """``{"install": [...], "test": [...], "gpu": [...]}``: the requirement strings of
    setup.py, read from its source (running it would call setup())."""
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "INSTALL_REQUIRES" for t in node.targets):
            found["install"] = ast.literal_eval(node.value)
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            found.update(ast.literal_eval(node.value))
    assert found.get("install"), "setup.py has no INSTALL_REQUIRES list"
    return found


def constraints():
    """``{canonical name: Version}`` of constraints.txt, each line ``name==version``."""
    pins = {}
    with open(os.path.join(REPO, "constraints.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            req = Requirement(line)
            (spec,) = req.specifier  # exactly one pin per line
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def all_requirements():
    return [Requirement(r) for group in setup_requirements().values() for r in group]


def test_setup_states_ranges_not_pins():
    for req in all_requirements():
        operators = {s.operator for s in req.specifier}
        assert operators, f"{req}: no version range"
        assert not operators & {"==", "==="}, f"{req}: pinned; state a range (constraints.txt pins)"
        if canonicalize_name(req.name) not in UPPER_BOUND_ONLY:
            assert operators & {">=", ">", "~="}, f"{req}: no lower bound"


def test_every_constraint_lies_in_its_range():
    pins = constraints()
    for req in all_requirements():
        name = canonicalize_name(req.name)  # tensorflow[and-cuda]: tensorflow's pin
        assert name in pins, f"{req.name} is in setup.py but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside setup.py's {req}")


def test_the_ranges_admit_the_tested_environment():
    # the versions this test run uses satisfy setup.py (an environment outside the
    # ranges is one the ranges do not describe)
    for req in (Requirement(r) for r in setup_requirements()["install"]):
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is required but not installed")
        assert req.specifier.contains(installed, prereleases=True), (req, installed)


def test_make_installs_with_the_constraints():
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        makefile = f.read()
    rule = re.search(r"^\$\(VENV\)/\.installed:(.*)$", makefile, re.M)
    assert rule and "constraints.txt" in rule.group(1).split()  # reinstall when it changes
    assert re.search(r'pip install .*-c constraints\.txt -e "\.\[test\]"', makefile)
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        assert "make test" in f.read()  # CI installs through the same rule
