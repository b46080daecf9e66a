"""Small networks and data for fast model tests."""

import keras
import numpy as np
import scipy.linalg
import tensorflow as tf
from keras import layers

from tf_asgan.networks import dcgan

LATENT = 8


def tiny_dcgan(batch_norm=True):
    """The DCGAN topology at 32 px with a few channels (fast on a CPU)."""
    g = dcgan.generator(32, latent_dim=LATENT, batch_norm=batch_norm, channels=(8, 4, 4))
    d = dcgan.discriminator(32, batch_norm=batch_norm, channels=(4, 8, 8))
    return g, d


def deterministic_pair(res=8):
    """G that ignores z (so updates do not depend on the random latents), D without BN."""
    z = keras.Input((LATENT,))
    h = layers.Lambda(lambda t: tf.ones_like(t))(z)
    h = layers.Dense(res * res * 3, activation="tanh")(h)
    g = keras.Model(z, layers.Reshape((res, res, 3))(h))
    x = keras.Input((res, res, 3))
    h = layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh")(x)
    d = keras.Model(x, layers.Dense(1)(layers.Flatten()(h)))
    return g, d


def images(n, res=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, res, res, 3)).astype("float32")


def snapshot(model):
    return [w.copy() for w in model.get_weights()]


def changed(before, model):
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def scipy_fid(a, b):
    """FID by an independent route: NumPy moments and SciPy's matrix square root."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m1, m2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * root))


def numpy_kid(a, b):
    """Unbiased MMD^2 with the cubic polynomial kernel over the whole sets (one block)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    m, n = len(a), len(b)
    return ((kaa.sum() - np.trace(kaa)) / (m * (m - 1))
            + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2 * kab.mean())


def damaged_copy(saved_model_dir, copy, damage):
    """Copies a SavedModel folder to ``copy`` and damages it as an interrupted copy would:
    ``damage`` is a file to delete (relative path) or "truncate" (the variables data cut
    to 16 bytes). Returns ``copy`` as a string."""
    import os
    import pathlib
    import shutil

    copy = pathlib.Path(copy)
    shutil.copytree(saved_model_dir, copy)
    if damage == "truncate":
        (shard,) = (copy / "variables").glob("variables.data-*")
        shard.write_bytes(shard.read_bytes()[:16])
    else:
        os.remove(copy / damage)
    return str(copy)
