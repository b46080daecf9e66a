"""Training data: named TFDS datasets, image folders, and the embedded digits.

Every source yields float32 images ``[H, W, 3]`` in ``[-1, 1]`` at the model's
resolution (a :class:`~tf_asgan.sources.Source`). :func:`source` picks one by name;
:func:`training_stream` turns it into the batched, resumable training stream. Image
folders are handled in :mod:`tf_asgan.folders`, the embedded digits in
:mod:`tf_asgan.digits`; the names callers used to import from here
(``digits_source``, ``folder_source``, ``image_files`` ...) still are.
"""

import logging
import os
from typing import Optional

import tensorflow as tf

from tf_asgan import errors
from tf_asgan.digits import (  # noqa: F401 - re-exported
    STACKED_DIGITS_SIZE,
    digits_arrays,
    digits_source,
    stacked_digits,
    upscale_digits,
)
from tf_asgan.folders import (  # noqa: F401 - re-exported
    BAD_IMAGES,
    IMAGE_EXTENSIONS,
    BadImagesError,
    content_digest,
    folder_source,
    image_files,
    scan_images,
)
from tf_asgan.sources import Source, to_model_range

# name: the TFDS split used for training
TFDS_DATASETS = {
    "cifar10": "train",
    "cifar100": "train",
    "celeb_a": "train",
    "lsun/bedroom": "train",
    "imagenet_resized/64x64": "train",
    "stl10": "unlabelled",
}
EMBEDDED_DATASETS = ("digits", "stacked_digits")
FOLDER = "folder"
DATASETS = tuple(TFDS_DATASETS) + EMBEDDED_DATASETS + (FOLDER,)
log = logging.getLogger(__name__)


class DatasetNotAvailableError(FileNotFoundError):
    """A named dataset is not prepared locally and cannot be downloaded here."""


def _not_prepared_message(name, data_dir, problem):
    where = data_dir or "the TFDS default data dir (~/tensorflow_datasets)"
    return (f"Dataset {name!r} cannot be read from {where}: {problem}. Either prepare it "
            f"on a machine with internet access (`python -c \"import tensorflow_datasets as "
            f"tfds; tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"`) and "
            f"copy DIR here (whole), then pass --data_dir=DIR; or pass --download to let "
            f"TFDS fetch it; or train on a folder of images with --dataset=folder "
            f"--image_dir=PATH.")


# A TFRecord record is framed by an 8-byte length and two 4-byte checksums.
TFRECORD_FRAMING_BYTES = 16


def _shard_problems(info, split):
    """What is wrong with the split's data files on disk, in words (``[]``: nothing
    found): files its metadata lists that are missing, or TFRecord files whose sizes
    add up to less than the metadata's bytes (a truncated copy)."""
    try:
        split_info = info.splits[split]
        paths = [str(p) for p in split_info.filepaths]
    except (KeyError, ValueError, TypeError, AttributeError):  # no split metadata (mocks)
        return []
    missing = [p for p in paths if not tf.io.gfile.exists(p)]
    if missing:
        return [f"its folder {os.path.dirname(missing[0])} is incomplete: {len(missing)} "
                f"data file(s) missing, e.g. {os.path.basename(missing[0])}"]
    expected = int(getattr(split_info, "num_bytes", 0) or 0)
    if expected and paths and all(".tfrecord" in os.path.basename(p) for p in paths):
        expected += TFRECORD_FRAMING_BYTES * int(split_info.num_examples)
        found = sum(tf.io.gfile.stat(p).length for p in paths)
        if found < expected:
            return [f"its data files in {os.path.dirname(paths[0])} are incomplete: "
                    f"{found} bytes where its metadata implies {expected} (a truncated "
                    "copy?)"]
    return []


def tfds_source(name, resolution, data_dir=None, split=None, download=False):
    """A named TFDS dataset, read from ``data_dir`` (the TFDS default when ``None``).

    With ``download=False`` (the default, so that an offline machine fails at once
    instead of retrying for minutes) a dataset that is not prepared, or whose folder is
    incomplete (data files listed in its metadata are missing), raises
    :class:`DatasetNotAvailableError` saying what is missing and how to prepare it.
    """
    import tensorflow_datasets as tfds  # heavy; only needed for named datasets

    split = split or TFDS_DATASETS[name]
    try:
        ds, info = tfds.load(name, split=split, data_dir=data_dir, download=download,
                             with_info=True, shuffle_files=False)
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, OSError, ValueError,
            tf.errors.OpError) as err:
        raise DatasetNotAvailableError(_not_prepared_message(
            name, data_dir, f"it is not prepared (or its metadata cannot be read) there "
                            f"(TFDS said: {errors.short_message(err)})")) from err
    problems = _shard_problems(info, split)
    if problems:  # e.g. an interrupted copy: TFDS would fail only when reading them
        raise DatasetNotAvailableError(_not_prepared_message(name, data_dir, problems[0]))
    images = ds.map(lambda ex: to_model_range(ex["image"], resolution),
                    num_parallel_calls=tf.data.AUTOTUNE)
    count = info.splits[split].num_examples if split in info.splits else 0
    if not count:  # no split metadata (e.g. tfds.testing.mock_data): ask the dataset
        count = max(0, int(ds.cardinality()))
    return Source(images, int(count), f"tfds:{name}[{split}] at {resolution}px",
                  fingerprint=f"tfds:{name}:{info.version}:{split}")


def source(name, resolution, *, data_dir=None, image_dir=None, download=False, split=None,
           seed=0, bad_images="skip"):
    """The :class:`Source` for dataset ``name`` (see :data:`DATASETS`)."""
    if name in TFDS_DATASETS:
        return tfds_source(name, resolution, data_dir, split, download)
    if name == "digits":
        return digits_source(resolution, split or "train")
    if name == "stacked_digits":
        return stacked_digits(resolution, split or "train", seed=seed)
    if name == FOLDER:
        if not image_dir:
            raise ValueError("dataset 'folder' needs an image directory (--image_dir).")
        return folder_source(image_dir, resolution, bad_images)
    raise ValueError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}.")


def epoch_steps(src: Source, batch_size, steps_per_epoch: Optional[int] = None):
    """Training steps in one epoch: ``steps_per_epoch``, or one pass over ``src``."""
    natural = src.num_examples // batch_size
    steps = steps_per_epoch or natural
    if steps < 1:
        raise ValueError(f"{src.description} has {src.num_examples} images, fewer than one "
                         f"batch of {batch_size}; lower the batch size.")
    if natural and steps > natural:
        raise ValueError(f"steps_per_epoch={steps} but {src.description} holds only "
                         f"{natural} batches of {batch_size}; leave it unset or lower it.")
    return steps


def _concatenate(parts):
    """``parts[0].concatenate(parts[1])...`` as a balanced tree (logarithmic nesting)."""
    if len(parts) == 1:
        return parts[0]
    half = len(parts) // 2
    return _concatenate(parts[:half]).concatenate(_concatenate(parts[half:]))


def _epoch_seed(seed, epoch):
    return seed * 1_000_003 + epoch


def _buffered_stream(src, batch_size, epochs, seed, steps_per_epoch, skip, cache, buffer):
    """Batches of sources that cannot be listed: each epoch a seeded buffer shuffle of
    the (cached) images."""
    natural = src.num_examples // batch_size
    images = src.images.cache() if cache else src.images
    buffer = max(1, min(buffer, src.num_examples or buffer))

    def epoch(e):
        # ``e`` is a Python int: Dataset.shuffle cannot take a symbolic seed.
        shuffled = images.shuffle(buffer, seed=_epoch_seed(seed, e),
                                  reshuffle_each_iteration=False)
        batches = shuffled.batch(batch_size, drop_remainder=True)
        # A shortened epoch stops reading early; a full one reads to the end, which
        # is what completes the in-memory cache after the first epoch.
        return batches if steps_per_epoch == natural else batches.take(steps_per_epoch)

    return _concatenate([epoch(e) for e in epochs]).skip(skip)


def _listed_stream(src, batch_size, epochs, seed, steps_per_epoch, skip):
    """Batches of a listed source (a folder): each epoch the first
    ``steps_per_epoch * batch_size`` indices of a fresh full permutation; the images
    are read (one map over the whole stream) as they are needed."""
    per_epoch = steps_per_epoch * batch_size
    indices = _concatenate([src.permutation(_epoch_seed(seed, e)).take(per_epoch)
                            for e in epochs]).skip(skip * batch_size)
    images = indices.map(src.read_index, num_parallel_calls=tf.data.AUTOTUNE)
    return images.batch(batch_size, drop_remainder=True)


def training_stream(src: Source, batch_size, *, epochs, seed=0, start_step=0,
                    steps_per_epoch: Optional[int] = None, cache=True,
                    shuffle_buffer=10_000):
    """The shuffled batches of a run's epochs, resumable at any step.

    Epoch ``e`` is shuffled with its own seed (``seed * 1_000_003 + e``; TensorFlow also
    folds in the global seed, so build the stream after ``tf.random.set_seed``), so the
    stream is deterministic and a run resumed at step ``s`` sees exactly the batches an
    uninterrupted run would: it starts at epoch ``s // steps_per_epoch``, skipping the
    batches of that epoch already trained on. Incomplete final batches are dropped.

    Args:
      src: the images.
      batch_size: global batch size.
      epochs: the stream ends after this many epochs (counted from step 0).
      seed: shuffle seed.
      start_step: training steps already done.
      steps_per_epoch: batches per epoch (default ``num_examples // batch_size``).
      cache: keep decoded images in memory (the embedded and 32 px datasets fit); not for
        a folder, which is read in a full permutation each epoch.
      shuffle_buffer: shuffle buffer size (``num_examples`` when smaller) of sources
        that cannot list their examples (TFDS, the embedded data).

    Returns:
      ``(dataset, steps_per_epoch)``.
    """
    steps_per_epoch = epoch_steps(src, batch_size, steps_per_epoch)
    first_epoch, skip = divmod(int(start_step), steps_per_epoch)
    if first_epoch >= epochs:
        raise ValueError(f"start_step={start_step} is past the end of {epochs} epochs of "
                         f"{steps_per_epoch} steps.")
    if src.read_index is not None:
        stream = _listed_stream(src, batch_size, range(first_epoch, epochs), seed,
                                steps_per_epoch, skip)
    else:
        stream = _buffered_stream(src, batch_size, range(first_epoch, epochs), seed,
                                  steps_per_epoch, skip, cache, shuffle_buffer)
    return stream.prefetch(tf.data.AUTOTUNE), steps_per_epoch
