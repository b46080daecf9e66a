"""Small networks and data for fast model tests."""

import keras
import numpy as np
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
