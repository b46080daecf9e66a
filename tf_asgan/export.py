"""The generator as a self-contained TF SavedModel, loadable without tf_asgan.

Signatures of ``<dir>``:

- ``serving_default``: ``z`` float32 ``[N, latent_dim]`` -> ``{"images": float32
  [N, H, W, 3] in [-1, 1]}``;
- ``sample``: ``n`` int32 scalar, ``seed`` int32 scalar -> ``{"images": ..., "z": ...}``
  with ``z ~ N(0, I)`` drawn statelessly from ``seed`` (same seed, same images).

The same functions are attributes of the loaded object (``generate(z)``,
``sample(n, seed)``), next to ``latent_dim`` and ``resolution`` (int32 scalars)::

    import tensorflow as tf
    g = tf.saved_model.load("runs/demo/generator")
    images = g.sample(16, 0)["images"]        # [16, 32, 32, 3] in [-1, 1]
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from tf_asgan import checkpoints

METADATA_FILE = "tf_asgan.json"


class _ExportedGenerator(tf.Module):
    def __init__(self, generator, latent_dim):
        super().__init__(name="generator")
        self.model = generator
        self.latent_dim = tf.Variable(latent_dim, dtype=tf.int32, trainable=False)
        self.resolution = tf.Variable(int(generator.outputs[0].shape[1]), dtype=tf.int32,
                                      trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z")])
        def generate(z):
            return {"images": tf.cast(self.model(z, training=False), tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"),
                                      tf.TensorSpec([], tf.int32, name="seed")])
        def sample(n, seed):
            z = tf.random.stateless_normal(tf.stack([n, latent_dim]), seed=tf.stack([seed, 0]))
            return {"images": generate(z)["images"], "z": z}

        self.generate = generate
        self.sample = sample


def export_generator(generator, path, *, latent_dim=None, metadata=None, overwrite=False):
    """Writes ``generator`` as a SavedModel at ``path``, atomically.

    The model is written to a temporary folder beside ``path`` and renamed into place,
    so a crash never leaves a half-written export. An existing export is replaced only
    with ``overwrite=True``. A generator with a NaN or infinite weight is refused
    (:class:`~tf_asgan.checkpoints.NonFiniteError`).

    Args:
      generator: a Keras model ``[N, latent_dim] -> [N, H, W, 3]`` in ``[-1, 1]``.
      path: the SavedModel directory.
      latent_dim: default: the generator's input size.
      metadata: JSON-serialisable dict stored as ``assets.extra/tf_asgan.json``.
      overwrite: replace an existing export.

    Returns:
      ``path``.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (export.py --overwrite) to "
                              "replace it, or export elsewhere.")
    bad = checkpoints.nonfinite_variables(generator.variables)
    if bad:
        raise checkpoints.NonFiniteError((metadata or {}).get("step"), bad,
                                         where="generator weights (not exported)")
    latent_dim = int(latent_dim or generator.inputs[0].shape[-1])
    module = _ExportedGenerator(generator, latent_dim)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.generate,
                                                     "sample": module.sample})
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, METADATA_FILE), "w") as f:
            json.dump(dict(metadata or {}, latent_dim=latent_dim), f, indent=2, sort_keys=True)
        if os.path.exists(path):
            old = tmp + ".old"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return path


def read_metadata(path):
    """The metadata dict stored with an export."""
    with open(os.path.join(path, "assets.extra", METADATA_FILE)) as f:
        return json.load(f)
