"""The contract every training-data source meets: :class:`Source`, and
:func:`to_model_range`, which brings any decoded image to the model's input form.

Geometry (ours): non-square images (CelebA's 178x218, LSUN's ~256xN, image-folder
files) are centre-cropped to a square of their shorter side, then resized with
area averaging (antialiased) to the resolution. For CelebA this is the PyTorch DCGAN
recipe (``Resize(64)`` + ``CenterCrop(64)``), which the paper's PyTorch code most likely
used; it keeps the whole face width and trims the forehead and chin evenly.
"""

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from tf_asgan import errors


@dataclasses.dataclass
class Source:
    """Unbatched images ``[R, R, C]`` in ``[-1, 1]`` (``C``: 3, or 1 for the grey
    datasets, :func:`tf_asgan.data.catalog.channels`) and how many there are in one epoch.

    Attributes:
      images: the images in the source's own order (sorted file names for a folder).
      num_examples: how many.
      description: for logs.
      fingerprint: what the images are computed from (a folder's file names, sizes and
        modification times; a TFDS dataset's name, version and split; and the version
        of the decoding, :data:`tf_asgan.data.decode.VERSION`); caches of anything
        computed from the images are keyed on it.
      read_index: ``index (int64 scalar tensor) -> image``, where the examples are
        listed (folders), so that any order of them can be read; ``None`` otherwise
        (the caller shuffles with a buffer).
    """

    images: tf.data.Dataset
    num_examples: int
    description: str
    fingerprint: str = ""
    read_index: Optional[Callable[[tf.Tensor], tf.Tensor]] = None

    def permutation(self, seed):
        """A seeded uniform permutation of ``range(num_examples)`` as a dataset of int64
        (a shuffle buffer as large as the dataset, of indices only)."""
        n = self.num_examples
        return tf.data.Dataset.range(n).shuffle(max(n, 1), seed=seed,
                                                reshuffle_each_iteration=False)

    def in_random_order(self, seed, buffer=10_000):
        """The images in a seeded random order: a full permutation when the source can
        list them, else a shuffle buffer of ``min(buffer, num_examples)``."""
        if self.read_index is not None:
            return self.permutation(seed).map(self.read_index,
                                              num_parallel_calls=tf.data.AUTOTUNE)
        size = max(1, min(buffer, self.num_examples or buffer))
        return self.images.shuffle(size, seed=seed, reshuffle_each_iteration=False)


def to_model_range(image, resolution, channels=3):
    """uint8 (or [0, 255] float) ``[h, w, c]`` -> float32 ``[R, R, channels]`` in ``[-1, 1]``.

    ``channels=3``: grayscale (with or without alpha) is repeated to RGB. ``channels=1``
    (MNIST, Fashion-MNIST): grayscale is kept, RGB is converted to luma
    (``tf.image.rgb_to_grayscale``, ITU-R BT.601 weights). An alpha channel is dropped;
    non-square images are centre-cropped to their shorter side, then resized (area,
    antialiased; an image already at ``R x R`` keeps its pixel values).

    Raises:
      InputError: ``channels`` other than 1 or 3.
    """
    if channels not in (1, 3):
        raise errors.InputError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}.")
    image = tf.convert_to_tensor(image)
    found = tf.shape(image)[-1]
    # 1: gray; 2: gray + alpha; 3: RGB; 4: RGBA.
    if channels == 3:
        image = tf.cond(found <= 2, lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                        lambda: image[..., :3])
    else:
        pixels = tf.cast(image, tf.float32)
        image = tf.cond(found <= 2, lambda: pixels[..., :1],
                        lambda: tf.image.rgb_to_grayscale(pixels[..., :3]))
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    image = tf.cast(image, tf.float32)
    image = tf.image.resize(image, (resolution, resolution), method="area", antialias=True)
    image = tf.ensure_shape(image, (resolution, resolution, channels))
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
