"""The one place that imports TF-GAN.

``import tensorflow_gan`` fails under TensorFlow >= 2.16: the package ``__init__``
imports its Estimator module, which needs the removed ``tf.estimator``
(tensorflow/gan issue 55), and importing any submodule runs that ``__init__``
first. We therefore register the two parent packages (``tensorflow_gan`` and
``tensorflow_gan.python``) as empty module objects whose ``__path__`` points at
the installed folders, and import only the submodules we use. Nothing else in
tf_asgan imports TF-GAN; use ``losses_impl()`` and ``eval_module()`` from here.
"""

import importlib
import importlib.util
import sys
import types

_PARENTS = ("tensorflow_gan", "tensorflow_gan.python")


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
