"""What ``ASGAN.fit`` accepts: image batches in [-1, 1], checked before any step.

uint8 data that was not rescaled would train a different model without any error, so
``fit``'s images are checked to lie in ``[-1, 1]`` (up to
:data:`tf_asgan.utils.images.RANGE_SLACK`): arrays at once, ``tf.data`` datasets as they are
read. The check runs in the input pipeline, not in the train step, where XLA would
compile it away.
(Data in ``[0, 1]`` lies in the range and cannot be told apart.)
"""

import numpy as np
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.utils import images as images_lib

_HINT = "scale uint8 images with x / 127.5 - 1 (tf_asgan.data.catalog sources already do)."


def images_of(element):
    """The float32 image batch ``[N, H, W, C]`` of a ``fit`` element: an image tensor or
    an ``(images, label)`` tuple.

    Raises:
      ValueError: a dict element.
    """
    if isinstance(element, (tuple, list)):
        element = element[0]
    if isinstance(element, dict):
        raise errors.InputError("ASGAN.fit expects image batches or (image, label) tuples, "
                                "not dicts.")
    return tf.cast(element, tf.float32)


def check_range(images):
    """``images``, after an in-graph assertion that they lie in [-1, 1]
    (``InvalidArgumentError`` naming the batch's min and max otherwise)."""
    lowest, highest = tf.reduce_min(images), tf.reduce_max(images)
    ok = tf.logical_and(lowest >= -1.0 - images_lib.RANGE_SLACK,
                        highest <= 1.0 + images_lib.RANGE_SLACK)
    check = tf.debugging.Assert(ok, [
        "ASGAN trains on images in [-1, 1]; this batch spans [min, max] =", lowest, highest,
        "- " + _HINT])
    with tf.control_dependencies([check]):
        return tf.identity(images)


def _checked_element(*element):
    """A dataset element (images, or a tuple starting with them) with its images checked."""
    if isinstance(element[0], dict):
        return element if len(element) > 1 else element[0]
    checked = (check_range(tf.cast(element[0], tf.float32)),) + element[1:]
    return checked if len(checked) > 1 else checked[0]


def range_checked(x):
    """``fit``'s ``x`` with its images checked to lie in [-1, 1] before any step.

    Raises:
      ValueError: an array (NumPy or eager tensor) outside the range, at once. A
        ``tf.data.Dataset`` is checked as it is read (``InvalidArgumentError``).
    """
    if isinstance(x, tf.data.Dataset):
        return x.map(_checked_element)
    if isinstance(x, (np.ndarray, tf.Tensor)) and np.size(x):
        low, high = float(np.min(x)), float(np.max(x))
        if not images_lib.in_model_range(low, high):
            raise errors.InputError(f"ASGAN trains on images in [-1, 1]; these span [{low:g}, "
                                    f"{high:g}]. Scale uint8 images with x / 127.5 - 1.")
    return x
