"""Test setup: quiet TensorFlow, two logical CPU devices for MirroredStrategy tests, and
the memory each test's models leave behind given back (so one pytest process of the
whole suite stays within a few GB)."""

import ctypes
import gc
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The digit classifier and real-data statistics are cached per test session, never in
# the user's ~/.cache (subprocesses inherit this). tests/run_groups.py shares one digit
# classifier folder among its groups (TF_ASGAN_TEST_CACHE), so the classifier is trained
# once, not per group; the statistics stay per session (tests check when they are reused).
os.environ["TF_ASGAN_CACHE"] = tempfile.mkdtemp(prefix="tf_asgan_test_cache_")
if os.environ.get("TF_ASGAN_TEST_CACHE"):
    _shared = os.path.join(os.environ["TF_ASGAN_TEST_CACHE"], "digit_classifier")
    os.makedirs(_shared, exist_ok=True)
    os.symlink(_shared, os.path.join(os.environ["TF_ASGAN_CACHE"], "digit_classifier"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import ops as _tf_ops  # noqa: E402

# Must run before TensorFlow initialises its devices
# (docs/dependencies.md#logical-cpu-devices-for-mirroredstrategy-tests).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(autouse=True)
def _seed():
    tf.keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def mirrored():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Several strategy objects in one process reuse collective instance keys, and a
    second one then fails with "Shape mismatch in the collective instance".
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(autouse=True)
def _free_traced_graphs():
    """After each test: removes the ``CustomGradient-N`` entries of TensorFlow's global
    gradient registry. Every traced Keras optimizer step adds one (``tf.custom_gradient``
    inside ``ReplicaContext.all_reduce``) whose closure keeps that trace's whole graph
    alive (about 14 MB per ``fit``) for the life of the process; nothing else removes
    them. A graph already traced keeps working (gradients are looked up when tracing); a
    retrace registers new entries. A private TensorFlow name: a no-op if it changes."""
    yield
    registry = getattr(getattr(_tf_ops, "_gradient_registry", None), "_registry", {})
    for name in [name for name in registry if name.startswith("CustomGradient-")]:
        del registry[name]


_LIBC = ctypes.CDLL("libc.so.6") if os.name == "posix" else None


@pytest.fixture(autouse=True, scope="module")
def _free_module_memory():
    """After each test module: Python's cycles and the C heap's free pages go back
    (``malloc_trim``), so memory does not pile up module by module."""
    yield
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
