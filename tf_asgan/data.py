"""Training data: named TFDS datasets, image folders, and the embedded digits.

Every source yields float32 images ``[H, W, 3]`` in ``[-1, 1]`` at the model's
resolution. :func:`training_stream` turns a source into the batched training stream.

Geometry (ours): non-square images (CelebA's 178x218, LSUN's ~256xN, image-folder
files) are centre-cropped to a square of their shorter side, then resized with
area averaging (antialiased) to the resolution. For CelebA this is the PyTorch DCGAN
recipe (``Resize(64)`` + ``CenterCrop(64)``), which the paper's PyTorch code most likely
used; it keeps the whole face width and trims the forehead and chin evenly.
"""

import dataclasses
import hashlib
import json
import logging
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_asgan import errors

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
# What tf.io.decode_image reads; an animated GIF gives its first frame.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
BAD_IMAGES = ("skip", "fail")
STACKED_DIGITS_SIZE = 50_000
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Source:
    """Unbatched images in ``[-1, 1]`` and how many there are in one epoch.

    Attributes:
      images: the images in the source's own order (sorted file names for a folder).
      num_examples: how many.
      description: for logs.
      fingerprint: what the images are computed from (a folder's file names, sizes and
        modification times; a TFDS dataset's name, version and split); caches of
        anything computed from the images are keyed on it.
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


def to_model_range(image, resolution):
    """uint8 (or [0, 255] float) ``[h, w, c]`` -> float32 ``[R, R, 3]`` in ``[-1, 1]``.

    Grayscale (with or without alpha) is repeated to RGB, an alpha channel is dropped,
    non-square images are centre-cropped to their shorter side, then resized (area,
    antialiased).
    """
    image = tf.convert_to_tensor(image)
    channels = tf.shape(image)[-1]
    # 1: gray; 2: gray + alpha; 3: RGB; 4: RGBA.
    image = tf.cond(channels <= 2, lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                    lambda: image[..., :3])
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    image = tf.cast(image, tf.float32)
    image = tf.image.resize(image, (resolution, resolution), method="area", antialias=True)
    image = tf.ensure_shape(image, (resolution, resolution, 3))
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)


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


def image_files(directory):
    """Sorted paths of the image files (:data:`IMAGE_EXTENSIONS`) below ``directory``."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Image folder {directory!r} does not exist.")
    paths = sorted(
        os.path.join(root, f) for root, _, files in os.walk(directory) for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f"Image folder {directory!r} holds no {'/'.join(IMAGE_EXTENSIONS)} "
                         "files (searched recursively).")
    return paths


class BadImagesError(ValueError):
    """Image files of a folder cannot be decoded (with ``bad_images="fail"``)."""


def _decode_file(path):
    return tf.io.decode_image(tf.io.read_file(path), expand_animations=False)


def content_digest(paths):
    """SHA-1 of the files' absolute paths, sizes, modification and status-change times
    (nanoseconds) and inodes: it changes when a file is added, removed, renamed or
    rewritten."""
    digest = hashlib.sha1()
    for path in paths:
        st = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0"
                      f"{st.st_ctime_ns}\0{st.st_ino}\n".encode())
    return digest.hexdigest()


def _folder_cache_path(paths, kind):
    from tf_asgan.classifiers import cache_root  # the project's cache folder

    suffix = "" if kind == "scan" else f".{kind}"
    return os.path.join(cache_root(), "folders", content_digest(paths) + suffix + ".json")


def _scan(paths):
    index = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), paths))
    readable = index.map(lambda i, p: (i, tf.shape(_decode_file(p))),
                         num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = {int(i) for i, shape in readable.as_numpy_iterator() if shape.min() > 0}
    bad = []
    for i, path in enumerate(paths):
        if i not in good:  # decoded again, alone, for the reason
            try:
                _decode_file(path)
                reason = "empty image"
            except (tf.errors.OpError, ValueError) as err:
                reason = errors.short_message(err, 160)
            bad.append((path, reason))
    return bad


# EXIF Orientation (tag 0x0112) -> what turns the stored pixels into the displayed image,
# as PIL.ImageOps.exif_transpose does (2, 4: mirror; 3: 180; 5, 7: transpose, transverse;
# 6: 90 clockwise; 8: 90 counter-clockwise).
_EXIF_ORIENTATION = 0x0112


def exif_orientations(paths, use_cache=True):
    """The EXIF Orientation of each file (1 when it has none or it cannot be read), from
    the file headers only; cached like :func:`scan_images`.

    Returns:
      A list of ints in [1, 8], one per path.
    """
    cache = _folder_cache_path(paths, "exif") if use_cache else None
    if cache and os.path.exists(cache):
        try:
            with open(cache) as f:
                stored = json.load(f)
            if len(stored) == len(paths):
                return [int(o) for o in stored]
        except (OSError, ValueError, TypeError):
            log.warning("Ignoring the unreadable EXIF cache %s.", cache)
    orientations = []
    for path in paths:
        try:
            with Image.open(path) as image:
                value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
        except Exception:  # noqa: BLE001 - unreadable files are the scan's business
            value = 1
        orientations.append(value if 1 <= value <= 8 else 1)
    if cache:
        _write_json_quietly(cache, orientations)
    return orientations


def apply_orientation(image, orientation):
    """``image`` ``[H, W, C]`` as displayed under EXIF ``orientation`` (int tensor, 1-8)."""
    transpose = lambda t: tf.transpose(t, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,  # 1
        lambda: tf.image.flip_left_right(image),  # 2
        lambda: tf.image.rot90(image, 2),  # 3
        lambda: tf.image.flip_up_down(image),  # 4
        lambda: transpose(image),  # 5
        lambda: tf.image.rot90(image, 3),  # 6: 90 degrees clockwise
        lambda: tf.image.rot90(transpose(image), 2),  # 7
        lambda: tf.image.rot90(image, 1),  # 8: 90 degrees counter-clockwise
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)


def _write_json_quietly(path, value):
    """Writes a cache file atomically; a cache that cannot be written is only logged."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(value, f)
        os.replace(tmp, path)
    except OSError as err:  # e.g. a read-only cache folder: go on without it
        log.warning("Could not write the cache file %s (%s).", path, err)


def scan_images(paths, use_cache=True):
    """Decodes every file once and returns the unreadable ones as ``[(path, reason)]``.

    The decoding runs in parallel through ``tf.data`` (about as costly as one epoch of
    reading). The result is cached under ``$TF_ASGAN_CACHE/folders``, keyed by the files'
    paths, sizes and modification times, so a resumed run does not scan again.
    """
    cache = _folder_cache_path(paths, "scan") if use_cache else None
    if cache and os.path.exists(cache):
        try:
            with open(cache) as f:
                return [tuple(item) for item in json.load(f)["bad"]]
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("Ignoring the unreadable scan cache %s.", cache)
    bad = _scan(paths)
    if cache:
        _write_json_quietly(cache, {"files": len(paths), "bad": bad})
    return bad


def folder_source(directory, resolution, bad_images="skip", scan=True):
    """Every PNG/JPEG/BMP/GIF/WebP below ``directory``: RGB, grayscale or RGBA, any size.

    Each file is decoded once first (:func:`scan_images`, cached), so that an unreadable
    or truncated file is found before training, not hours into it: with
    ``bad_images="skip"`` such files are left out, counted and named in the log; with
    ``"fail"`` :class:`BadImagesError` lists them. ``scan=False`` skips the check (a
    bad file then stops training when it is read).
    """
    if bad_images not in BAD_IMAGES:
        raise ValueError(f"bad_images must be one of {list(BAD_IMAGES)}, got {bad_images!r}.")
    paths = image_files(directory)
    bad = scan_images(paths) if scan else []
    if bad:
        listed = "; ".join(f"{p} ({why})" for p, why in bad[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        if bad_images == "fail" or len(bad) == len(paths):
            raise BadImagesError(
                f"{len(bad)} of the {len(paths)} image files in {directory!r} cannot be read: "
                f"{listed}{more}. Remove or repair them"
                + (", or pass --bad_images=skip to train without them." if len(bad) < len(paths)
                   else "."))
        log.warning("Skipping %d of the %d image files in %s that cannot be read: %s%s",
                    len(bad), len(paths), directory, listed, more)
        unreadable = {p for p, _ in bad}
        paths = [p for p in paths if p not in unreadable]

    orientations = np.asarray(exif_orientations(paths), np.int32)
    rotated = int(np.sum(orientations != 1))
    if rotated:
        log.info("%d of the %d images in %s carry an EXIF orientation; they are turned as "
                 "a viewer shows them.", rotated, len(paths), directory)

    path_table, orientation_table = tf.constant(paths), tf.constant(orientations)

    def read_index(index):
        image = _decode_file(tf.gather(path_table, index))
        image = apply_orientation(image, tf.gather(orientation_table, index))
        return to_model_range(image, resolution)

    images = tf.data.Dataset.range(len(paths)).map(read_index,
                                                   num_parallel_calls=tf.data.AUTOTUNE)
    skipped = f", {len(bad)} unreadable skipped" if bad else ""
    return Source(images, len(paths), f"folder:{directory} ({len(paths)} files{skipped})",
                  fingerprint=f"folder:{content_digest(paths)}", read_index=read_index)


def _digits_version():
    """The scikit-learn release whose bundled digits the embedded datasets are made from."""
    import sklearn

    return f"sklearn-{sklearn.__version__}"


def digits_arrays(split="train"):
    """scikit-learn's 1,797 handwritten digits, 8x8 in [0, 16], with labels.

    Split (ours, deterministic): every fifth image (index % 5 == 0) is "test"
    (360 images), the others "train" (1,437); "all" is all 1,797.
    """
    from sklearn.datasets import load_digits

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
        raise ValueError(f"Unknown digits split {split!r}; choose train, test or all.")
    return images[keep], labels[keep]


def upscale_digits(images, resolution=32):
    """8x8 digits in [0, 16] -> ``[N, R, R]`` float32 in ``[-1, 1]`` (bilinear)."""
    x = tf.image.resize(images[..., None] / 16.0, (resolution, resolution), "bilinear")
    return tf.clip_by_value(x[..., 0] * 2.0 - 1.0, -1.0, 1.0).numpy()


def digits_source(resolution=32, split="train"):
    """``digits``: each grayscale digit repeated to three channels."""
    images, _ = digits_arrays(split)
    gray = upscale_digits(images, resolution)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    return Source(tf.data.Dataset.from_tensor_slices(rgb), len(rgb),
                  f"digits[{split}] at {resolution}px",
                  fingerprint=f"embedded:digits:{split}:{_digits_version()}")


def stacked_digits(resolution=32, split="train", size=STACKED_DIGITS_SIZE, seed=0,
                   with_labels=False):
    """``stacked_digits``: 3 random digits as R, G, B channels; 1,000 modes.

    Sample ``i`` stacks digits drawn with a fixed seed; its mode label is
    ``100 * class(R) + 10 * class(G) + class(B)`` in ``[0, 1000)``.

    Returns:
      A :class:`Source` whose dataset yields images ``[R, R, 3]`` in ``[-1, 1]``, or
      ``(image, mode)`` pairs with ``with_labels=True``.
    """
    images, labels = digits_arrays(split)
    gray = tf.constant(upscale_digits(images, resolution))
    picks = np.random.default_rng(seed).integers(0, len(images), size=(size, 3))
    modes = (labels[picks] * np.array([100, 10, 1])).sum(axis=1)

    def stack(pick, mode):
        image = tf.stack([tf.gather(gray, pick[c]) for c in range(3)], axis=-1)
        return (image, mode) if with_labels else image

    ds = tf.data.Dataset.from_tensor_slices((picks, modes)).map(
        stack, num_parallel_calls=tf.data.AUTOTUNE)
    return Source(ds, size, f"stacked_digits[{split}] ({size} samples) at {resolution}px",
                  fingerprint=f"embedded:stacked_digits:{split}:{size}:{seed}:"
                              f"{_digits_version()}")


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
