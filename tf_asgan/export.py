"""The generator as a self-contained TF SavedModel, loadable without tf_asgan.

Signatures of ``<dir>``:

- ``serving_default``: ``z`` float32 ``[N, latent_dim]`` -> ``{"images": float32
  [N, H, W, C] in [-1, 1]}``, ``H = W`` the resolution and ``C`` the channels: 3 (RGB),
  or 1 (grey) for a generator of MNIST or Fashion-MNIST, kept as it is (not repeated);
- ``sample``: ``n`` int32 scalar, ``seed`` int32 scalar -> ``{"images": ..., "z": ...}``
  with ``z ~ N(0, I)`` drawn statelessly from ``seed`` (same seed, same images).

The same functions are attributes of the loaded object (``generate(z)``,
``sample(n, seed)``), next to ``latent_dim``, ``resolution`` and ``channels`` (int32
scalars; ``channels`` is also in the metadata, ``assets.extra/tf_asgan.json``)::

    import tensorflow as tf
    g = tf.saved_model.load("runs/demo/generator")
    images = g.sample(16, 0)["images"]        # [16, 32, 32, 3] in [-1, 1]
    # a 28x28 MNIST generator: [16, 28, 28, 1]

TF1's session-based loader (``saved_model_cli run``, TF Serving) runs both signatures too:
the SavedModel tracks the ``tf.Variable`` objects the functions read
(:class:`_ExportedGenerator`)::

    saved_model_cli run --dir runs/demo/generator --tag_set serve \
        --signature_def serving_default --inputs z=z.npy
"""

import json
import os

import tensorflow as tf

from tf_asgan import errors, layout
from tf_asgan.utils import io, nonfinite
from tf_asgan.utils.saved_models import ExportNotReadableError, read_saved_model


def _tf_variable(variable):
    """The ``tf.Variable`` that holds a Keras variable's value (itself for a tf.Variable)."""
    inner = getattr(variable, "_value", None)
    return inner if isinstance(inner, tf.Variable) else variable


class _ExportedGenerator(tf.Module):
    """What the SavedModel holds: the generator's ``tf.Variable`` objects and two functions.

    The Keras model itself is not tracked (ours): Keras 3 saves each of its variables as a
    *copy*, which TF1's session-based loader (``saved_model_cli run``, TF Serving) restores
    while the graph reads the original, uninitialised one ("Could not find variable
    g_bn3/gamma"). Tracking the tf.Variables that the functions read makes both loaders
    restore the variables the graph uses.
    """

    def __init__(self, generator, latent_dim):
        super().__init__(name="generator")
        self.generator_variables = [_tf_variable(v) for v in generator.variables]
        self.latent_dim = tf.Variable(latent_dim, dtype=tf.int32, trainable=False)
        self.resolution = tf.Variable(int(generator.outputs[0].shape[1]), dtype=tf.int32,
                                      trainable=False)
        self.channels = tf.Variable(image_channels(generator), dtype=tf.int32,
                                    trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z")])
        def generate(z):
            return {"images": tf.cast(generator(z, training=False), tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"),
                                      tf.TensorSpec([], tf.int32, name="seed")])
        def sample(n, seed):
            z = tf.random.stateless_normal(tf.stack([n, latent_dim]), seed=tf.stack([seed, 0]))
            return {"images": generate(z)["images"], "z": z}

        self.generate = generate
        self.sample = sample


def image_channels(generator):
    """The channels ``C`` of the images ``[N, H, W, C]`` ``generator`` makes (an int)."""
    return int(generator.outputs[0].shape[-1])


def export_generator(generator, path, *, latent_dim=None, metadata=None, overwrite=False):
    """Writes ``generator`` as a SavedModel at ``path``, atomically.

    The model is written to a temporary folder beside ``path`` and renamed into place,
    so a crash never leaves a half-written export. An existing export is replaced only
    with ``overwrite=True``. A generator with a NaN or infinite weight is refused
    (:class:`~tf_asgan.utils.nonfinite.NonFiniteError`).

    Args:
      generator: a Keras model ``[N, latent_dim] -> [N, H, W, C]`` in ``[-1, 1]``
        (``C`` 1 or 3; the export keeps it).
      path: the SavedModel directory.
      latent_dim: default: the generator's input size.
      metadata: JSON-serialisable dict stored as ``assets.extra/tf_asgan.json``, with
        ``latent_dim`` and ``channels`` added.
      overwrite: replace an existing export.

    Returns:
      ``path``.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise errors.ExistsError(f"{path} exists; pass overwrite=True (export.py --overwrite) to "
                                 "replace it, or export elsewhere.")
    bad = nonfinite.nonfinite_variables(generator.variables)
    if bad:
        raise nonfinite.NonFiniteError((metadata or {}).get("step"), bad,
                                       where="generator weights (not exported)")
    latent_dim = int(latent_dim or generator.inputs[0].shape[-1])
    module = _ExportedGenerator(generator, latent_dim)
    with io.atomic_directory(path, prefix=".export-") as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.generate,
                                                     "sample": module.sample})
        extra = os.path.join(tmp, layout.EXPORT_ASSETS)
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, layout.EXPORT_METADATA), "w") as f:
            json.dump(dict(metadata or {}, latent_dim=latent_dim,
                           channels=image_channels(generator)), f, indent=2, sort_keys=True)
    return path


def read_metadata(path):
    """The metadata dict stored with an export."""
    with open(os.path.join(path, layout.EXPORT_ASSETS, layout.EXPORT_METADATA)) as f:
        return json.load(f)


def load(path):
    """``tf.saved_model.load(path)`` of an export, or :class:`ExportNotReadableError`
    naming what is missing (instead of TensorFlow's error).

    Keep the returned object in a variable before calling its functions.
    """
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ExportNotReadableError(f"{path} is not a SavedModel directory (no "
                                     "saved_model.pb); export a run with scripts/export.py "
                                     "--workdir=...")
    return read_saved_model(path, tf.saved_model.load, ExportNotReadableError)
