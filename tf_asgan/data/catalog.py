"""The named training datasets: TFDS datasets, image folders and the embedded digits.

Every source yields float32 images ``[H, W, C]`` in ``[-1, 1]`` at the model's
resolution (a :class:`~tf_asgan.data.base.Source`), ``C`` = :func:`channels` of the
dataset: 1 for MNIST and Fashion-MNIST (kept grey, :data:`GREY_DATASETS`), 3 for the
others. :func:`source` picks one by name
(:data:`DATASETS`); TFDS datasets are read here, image folders by
:mod:`tf_asgan.data.folders`, the embedded digits by :mod:`tf_asgan.data.digits`.
:func:`tf_asgan.data.stream.training_stream` turns a source into the training stream.
"""

import logging
import os

import tensorflow as tf

from tf_asgan import errors
from tf_asgan.data import decode
from tf_asgan.data.base import Source, to_model_range
from tf_asgan.data.digits import (
    digits_source,
    stacked_digits,
)
from tf_asgan.data.folders import (
    folder_source,
)

# name: the TFDS split used for training
TFDS_DATASETS = {
    "cifar10": "train",
    "cifar100": "train",
    "celeb_a": "train",
    "lsun/bedroom": "train",
    "imagenet_resized/64x64": "train",
    "stl10": "unlabelled",
    "mnist": "train",
    "fashion_mnist": "train",
}

# Datasets kept with one (grey) channel: MNIST (LeCun et al. 1998) and Fashion-MNIST
# (Xiao et al. 2017), 28x28 uint8 in TFDS. Their native resolution is 28 (the WGAN-GP
# MNIST networks, tf_asgan.networks "wgangp_mnist"); any other --resolution of the
# chosen architecture resizes them (area averaging), which happens only when asked.
GREY_DATASETS = ("mnist", "fashion_mnist")
# The channel counts a source yields.
CHANNELS = (1, 3)


EMBEDDED_DATASETS = ("digits", "stacked_digits")


FOLDER = "folder"


DATASETS = tuple(TFDS_DATASETS) + EMBEDDED_DATASETS + (FOLDER,)


log = logging.getLogger(__name__)


class DatasetNotAvailableError(errors.TfAsganError, FileNotFoundError):
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


def _version_folders(tfds, name, data_dir):
    """The folders that may hold ``name``'s prepared version: the one its builder names
    or, where the builder itself fails on a folder without metadata (TFDS 4.9.4 raises
    ``FileNotFoundError`` there), every sub-folder of ``<data_dir>/<name>``."""
    try:
        return [str(tfds.builder(name, data_dir=data_dir).data_dir)]
    except Exception:  # noqa: BLE001 - fall back on the folders themselves
        root = data_dir or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
        base = os.path.join(root, *name.split(":")[0].split("/"))
        if not tf.io.gfile.isdir(base):
            return []
        return [os.path.join(base, entry.rstrip("/"))
                for entry in sorted(tf.io.gfile.listdir(base))
                if tf.io.gfile.isdir(os.path.join(base, entry))]


def _metadata_problem(tfds, name, data_dir):
    """In words, a version folder of ``name`` that holds data but no
    ``dataset_info.json`` (TFDS then reads no splits and fails with a ``KeyError``);
    ``None`` when that is not the problem."""
    try:
        for folder in _version_folders(tfds, name, data_dir):
            if not tf.io.gfile.isdir(folder) or tf.io.gfile.exists(
                    os.path.join(folder, "dataset_info.json")):
                continue
            found = len(tf.io.gfile.listdir(folder))
            if found:
                break
        else:
            return None
    except Exception:  # noqa: BLE001 - only a better message is at stake
        return None
    return (f"its folder {folder} holds {found} file(s) but no dataset_info.json (the "
            "metadata TFDS reads the splits from), so it is part of a prepared dataset, "
            "not all of it")


def channels(name):
    """The image channels dataset ``name`` yields: 1 for :data:`GREY_DATASETS`, else 3
    (grey images of other datasets and folders are repeated to RGB)."""
    return 1 if name in GREY_DATASETS else 3


def tfds_source(name, resolution, data_dir=None, split=None, download=False):
    """A named TFDS dataset, read from ``data_dir`` (the TFDS default when ``None``), as
    images ``[resolution, resolution, channels(name)]``.

    With ``download=False`` (the default, so that an offline machine fails at once
    instead of retrying for minutes) a dataset that is not prepared, or whose folder is
    incomplete (data files listed in its metadata are missing), raises
    :class:`DatasetNotAvailableError` saying what is missing and how to prepare it.
    """
    import tensorflow_datasets as tfds  # heavy; only needed for named datasets

    split = split or TFDS_DATASETS[name]
    try:
        # The images are decoded here (decode.decode_bytes), as TFDS's decoder reads a
        # JPEG with the fast, inaccurate IDCT.
        ds, info = tfds.load(name, split=split, data_dir=data_dir, download=download,
                             with_info=True, shuffle_files=False,
                             decoders={"image": tfds.decode.SkipDecoding()})
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, OSError, ValueError,
            KeyError, tf.errors.OpError) as err:
        raise DatasetNotAvailableError(_not_prepared_message(
            name, data_dir, _metadata_problem(tfds, name, data_dir)
            or f"it is not prepared (or its metadata cannot be read) there "
               f"(TFDS said: {errors.short_message(err)})")) from err
    problems = _shard_problems(info, split)
    if problems:  # e.g. an interrupted copy: TFDS would fail only when reading them
        raise DatasetNotAvailableError(_not_prepared_message(name, data_dir, problems[0]))
    depth = channels(name)
    images = ds.map(lambda ex: to_model_range(decode.decode_bytes(ex["image"]), resolution,
                                              depth),
                    num_parallel_calls=tf.data.AUTOTUNE)
    count = info.splits[split].num_examples if split in info.splits else 0
    if not count:  # no split metadata (e.g. tfds.testing.mock_data): ask the dataset
        count = max(0, int(ds.cardinality()))
    grey = ", grey" if depth == 1 else ""
    return Source(images, int(count), f"tfds:{name}[{split}] at {resolution}px{grey}",
                  fingerprint=f"tfds:{name}:{info.version}:{split}:decode{decode.VERSION}")


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
            raise errors.InputError("dataset 'folder' needs an image directory (--image_dir).")
        return folder_source(image_dir, resolution, bad_images)
    raise errors.InputError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}.")
