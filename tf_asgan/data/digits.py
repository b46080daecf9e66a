"""The embedded datasets ``digits`` and ``stacked_digits``, made from scikit-learn's
bundled 8x8 handwritten digits (no download).

Both the training data (:mod:`tf_asgan.data.catalog`) and the digit classifier behind the
metrics (:mod:`tf_asgan.evaluation.digit_network`) read the digits from here.
"""

import numpy as np
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.data.base import Source

STACKED_DIGITS_SIZE = 50_000


def version():
    """The scikit-learn release whose bundled digits the embedded datasets are made from,
    as ``"sklearn-<version>"`` (part of the datasets' fingerprints)."""
    import sklearn

    return f"sklearn-{sklearn.__version__}"


def digits_arrays(split="train"):
    """scikit-learn's 1,797 handwritten digits, with labels.

    Split (ours, deterministic): every fifth image (index % 5 == 0) is "test"
    (360 images), the others "train" (1,437); "all" is all 1,797.

    Returns:
      ``(images, labels)``: float32 ``[N, 8, 8]`` in ``[0, 16]`` and int64 ``[N]`` in
      ``[0, 10)``.

    Raises:
      ValueError: ``split`` is not train, test or all.
    """
    from sklearn.datasets import load_digits  # heavy; only needed for the digits

    bunch = load_digits()
    images, labels = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    index = np.arange(len(images))
    if split == "train":
        keep = index % 5 != 0
    elif split == "test":
        keep = index % 5 == 0
    elif split == "all":
        keep = index >= 0
    else:
        raise errors.InputError(f"Unknown digits split {split!r}; choose train, test or all.")
    return images[keep], labels[keep]


def upscale_digits(images, resolution=32):
    """8x8 digits ``[N, 8, 8]`` in ``[0, 16]`` -> ``[N, R, R]`` float32 in ``[-1, 1]``
    (bilinear)."""
    x = tf.image.resize(images[..., None] / 16.0, (resolution, resolution), "bilinear")
    return tf.clip_by_value(x[..., 0] * 2.0 - 1.0, -1.0, 1.0).numpy()


def stacked_picks(labels, size=STACKED_DIGITS_SIZE, seed=0):
    """Which digits make up each stacked sample, and its mode.

    Args:
      labels: int ``[M]``, the classes of the digits drawn from.
      size: number of stacked samples.
      seed: seed of the draw (NumPy ``default_rng``).

    Returns:
      ``(picks, modes)``: int64 ``[size, 3]`` indices into ``labels`` (the R, G, B digit
      of each sample) and int64 ``[size]`` modes ``100 * class(R) + 10 * class(G) +
      class(B)`` in ``[0, 1000)``.
    """
    picks = np.random.default_rng(seed).integers(0, len(labels), size=(size, 3))
    modes = (labels[picks] * np.array([100, 10, 1])).sum(axis=1)
    return picks, modes


def digits_source(resolution=32, split="train"):
    """``digits``: each grayscale digit repeated to three channels, as a :class:`Source`
    of ``[R, R, 3]`` images in ``[-1, 1]``."""
    images, _ = digits_arrays(split)
    gray = upscale_digits(images, resolution)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    return Source(tf.data.Dataset.from_tensor_slices(rgb), len(rgb),
                  f"digits[{split}] at {resolution}px",
                  fingerprint=f"embedded:digits:{split}:{version()}")


def stacked_digits(resolution=32, split="train", size=STACKED_DIGITS_SIZE, seed=0,
                   with_labels=False):
    """``stacked_digits``: 3 random digits as R, G, B channels; 1,000 modes.

    Sample ``i`` stacks digits drawn with a fixed seed (:func:`stacked_picks`); its mode
    label is ``100 * class(R) + 10 * class(G) + class(B)`` in ``[0, 1000)``.

    Returns:
      A :class:`Source` whose dataset yields images ``[R, R, 3]`` in ``[-1, 1]``, or
      ``(image, mode)`` pairs with ``with_labels=True``.
    """
    images, labels = digits_arrays(split)
    gray = tf.constant(upscale_digits(images, resolution))
    picks, modes = stacked_picks(labels, size, seed)

    def stack(pick, mode):
        image = tf.stack([tf.gather(gray, pick[c]) for c in range(3)], axis=-1)
        return (image, mode) if with_labels else image

    ds = tf.data.Dataset.from_tensor_slices((picks, modes)).map(
        stack, num_parallel_calls=tf.data.AUTOTUNE)
    return Source(ds, size, f"stacked_digits[{split}] ({size} samples) at {resolution}px",
                  fingerprint=f"embedded:stacked_digits:{split}:{size}:{seed}:{version()}")
