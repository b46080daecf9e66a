"""The one place that imports TF-GAN.

``import tensorflow_gan`` fails under TensorFlow >= 2.16: the package ``__init__``
imports its Estimator module, which needs the removed ``tf.estimator``
(tensorflow/gan issue 55), and importing any submodule runs that ``__init__``
first. We therefore register the two parent packages (``tensorflow_gan`` and
``tensorflow_gan.python``) as empty module objects whose ``__path__`` points at
the installed folders, and import only the submodules we use. Nothing else in
tf_asgan imports TF-GAN; use ``losses_impl()`` and ``eval_module()`` from here.

A user who imports ``tensorflow_gan`` in the same process gets these stand-in packages.
They resolve the public names of the real package lazily (``tfgan.eval``,
``tfgan.losses``, ``tfgan.features``, the ``train`` and ``namedtuples`` symbols, ...),
so ``tfgan.eval`` and ``tfgan.losses`` work; ``tfgan.estimator`` raises the error the
real package raises under TensorFlow >= 2.16.
"""

import importlib
import importlib.util
import sys
import types

_PARENTS = ("tensorflow_gan", "tensorflow_gan.python")


# The real package's public submodules and the modules whose symbols it re-exports.
_SUBMODULES = ("estimator", "eval", "features", "losses", "tpu")
_REEXPORTED = ("namedtuples", "train")


def _public_attribute(name):
    """The real ``tensorflow_gan``'s attribute ``name``, imported on first use."""
    if name in _SUBMODULES:
        return importlib.import_module("tensorflow_gan.python." + name)
    if name == "__version__":
        return importlib.import_module("tensorflow_gan.python.version").__version__
    if not name.startswith("_"):
        for module in _REEXPORTED:
            found = getattr(importlib.import_module("tensorflow_gan.python." + module),
                            name, None)
            if found is not None:
                return found
    raise AttributeError(f"module 'tensorflow_gan' has no attribute {name!r}")


def _register_parents():
    """Installs empty parent packages so submodule imports skip the broken __init__."""
    if getattr(sys.modules.get("tensorflow_gan.python"), "__path__", None):
        return
    spec = importlib.util.find_spec("tensorflow_gan")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "tensorflow-gan is not installed; install it with "
            "`pip install tensorflow-gan==2.1.0` (or `pip install -e .`)."
        )
    root = list(spec.submodule_search_locations)
    for name, path in ((_PARENTS[0], root), (_PARENTS[1], [p + "/python" for p in root])):
        module = types.ModuleType(name)
        module.__path__ = path
        module.__package__ = name
        module.__getattr__ = _public_attribute  # PEP 562: looked up on a missing name
        sys.modules[name] = module


def _import(submodule):
    _register_parents()
    return importlib.import_module("tensorflow_gan.python." + submodule)


def losses_impl():
    """Returns ``tensorflow_gan.python.losses.losses_impl`` (the loss functions)."""
    return _import("losses.losses_impl")


def eval_module():
    """Returns ``tensorflow_gan.python.eval`` (IS, FID, KID)."""
    return _import("eval")
