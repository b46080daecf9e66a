"""The contract every evaluation network meets: :class:`FeatureNetwork`.

Images ``[N, H, W, 3]`` in ``[-1, 1]`` at any resolution go in, ``(logits [N, classes],
features [N, dim])`` come out, so every metric (IS, FID, KID, modes, precision and
recall) runs through the same code whatever network gives the features
(:mod:`tf_asgan.evaluation.classifiers`: Inception or a SavedModel;
:mod:`tf_asgan.evaluation.digit_network`: the digit classifier). A network's
``fingerprint`` (here the SHA-1 of its weight files, :func:`sha1_of_files`) keys the
real-data statistics computed with it.
"""

import dataclasses
import hashlib
from typing import Callable

import tensorflow as tf

from tf_asgan import errors

# The input signature of every network's traced function: RGB images, any size.
IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32)


@dataclasses.dataclass
class FeatureNetwork:
    """A classifier used for metrics.

    Attributes:
      name: what the results call it (e.g. ``inception:tfgan/eval/inception/1``).
      fingerprint: identifies the weights (real-data statistics are cached per value).
      num_classes: size of the logits (also the number of modes counted).
      feature_dim: size of the features used for FID / KID.
      fn: images ``[N, H, W, 3]`` in ``[-1, 1]`` -> ``(logits, features)``, both 2-D.
      preprocessing: how the images are prepared, in words (written into results).
      count_modes: report modes covered and their KL from uniform (digit networks).
    """

    name: str
    fingerprint: str
    num_classes: int
    feature_dim: int
    fn: Callable
    preprocessing: str
    count_modes: bool = False

    def __call__(self, images):
        """``(logits [N, num_classes], features [N, feature_dim])`` as NumPy arrays of
        images ``[N, H, W, 3]`` in ``[-1, 1]``; ``[N, H, W, 1]`` (gray) images are
        classified as RGB with the channel repeated (``num_classes`` 0: no logits)."""
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
            raise errors.InputError(f"{self.name} takes images [N, H, W, 3] (or [N, H, W, 1]), "
                                    f"got shape {images.shape}.")
        if images.shape[-1] == 1:
            images = tf.repeat(images, 3, axis=-1)
        logits, features = self.fn(images)
        return logits.numpy(), features.numpy()

    def describe(self):
        return {"name": self.name, "fingerprint": self.fingerprint,
                "num_classes": self.num_classes, "feature_dim": self.feature_dim,
                "preprocessing": self.preprocessing}


def sha1_of_files(paths):
    """The SHA-1 (hex) of the files' bytes, in order: a network's fingerprint."""
    digest = hashlib.sha1()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
