"""What the tests share: small networks, generated data, small configurations, callbacks
that interrupt or record a run, and running the scripts."""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import scipy.linalg
import tensorflow as tf
from keras import layers
from PIL import Image

from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import base
from tf_asgan.networks import dcgan

# the repository root (the tests are in <root>/tests)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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
    copy = pathlib.Path(copy)
    shutil.copytree(saved_model_dir, copy)
    if damage == "truncate":
        (shard,) = (copy / "variables").glob("variables.data-*")
        shard.write_bytes(shard.read_bytes()[:16])
    else:
        os.remove(copy / damage)
    return str(copy)




def generated_source(n=40, res=32, seed=0):
    """Blobs on a dark background, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:res, :res]
    centres = rng.uniform(8, res - 8, (2, n, 1, 1))
    mask = ((yy - centres[0]) ** 2 + (xx - centres[1]) ** 2 < 30)[..., None]
    images = np.where(mask, rng.uniform(0, 1, (n, 1, 1, 3)), -1.0).astype(np.float32)
    return base.Source(tf.data.Dataset.from_tensor_slices(images), n, f"blobs({n})")


def small_config(**changes):
    # width 1/8: the networks' behaviour under test does not depend on their width, and a
    # run costs half the time (2.3 s against 4.3 s a run at full width on 2 cores)
    base = dict(batch_size=8, epochs=2, steps_per_epoch=3, checkpoint_every_steps=1,
                latent_dim=16, log_every_steps=1, width=0.125)
    base.update(changes)
    return TrainConfig(**base)


class Interrupt(Exception):
    pass


class StopAt(keras.callbacks.Callback):
    """Raises ``Interrupt`` once training reaches ``step`` (after its checkpoint)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations) == self.step:
            m = self.model
            self.state = {
                "g": [v.numpy() for v in m.generator.variables],
                "d": [v.numpy() for v in m.discriminator.variables],
                "g_opt": [v.numpy() for v in m.g_optimizer.variables],
                "d_opt": [v.numpy() for v in m.d_optimizer.variables],
            }
            raise Interrupt


class Steps(keras.callbacks.Callback):
    """Records the step count at each batch end."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(int(self.model.g_optimizer.iterations))


def run_script(name, *args, cwd=REPO):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", name), *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    return proc


def script_env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO + os.pathsep +
                os.path.join(REPO, "tests"))


def blobs(n, res=32, seed=0):
    """Images with structure (a bright disc of random place, size and colour)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:res, :res]
    out = np.full((n, res, res, 3), -1.0, np.float32)
    for i in range(n):
        cy, cx, r = rng.uniform(6, res - 6, 2).tolist() + [rng.uniform(3, 10)]
        out[i][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(-0.5, 1, 3)
    return out


def array_source(images):
    return base.Source(tf.data.Dataset.from_tensor_slices(images), len(images),
                       f"test array {images.shape} seed-sum {float(images.sum()):.3f}")


def is_png(path, min_size=(20, 20)):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] >= min_size[0] and im.size[1] >= min_size[1]


def load_script(name, module_name=None):
    """``scripts/<name>.py`` loaded as a module (its ``__main__`` block not run), named
    ``module_name`` (default ``script_<name>``)."""
    spec = importlib.util.spec_from_file_location(module_name or f"script_{name}",
                                                  os.path.join(REPO, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
