"""Test setup: quiet TensorFlow, two logical CPU devices for MirroredStrategy tests."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The digit classifier and real-data statistics are cached per test session, never in
# the user's ~/.cache (subprocesses inherit this).
os.environ["TF_ASGAN_CACHE"] = tempfile.mkdtemp(prefix="tf_asgan_test_cache_")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

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
