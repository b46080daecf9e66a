"""Image folders as training data: finding the files, decoding each once to find the
unreadable ones, EXIF orientation, and the folder's fingerprint.

Scan and EXIF results are cached under ``$TF_ASGAN_CACHE/folders`` (see
:func:`tf_asgan.utils.io.cache_root`), keyed by :func:`content_digest` of the files.
"""

import hashlib
import json
import logging
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_asgan import errors
from tf_asgan.data.base import Source, to_model_range
from tf_asgan.utils import io

# What tf.io.decode_image reads; an animated GIF gives its first frame.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
BAD_IMAGES = ("skip", "fail")
log = logging.getLogger(__name__)


def image_files(directory):
    """Sorted paths of the image files (:data:`IMAGE_EXTENSIONS`) below ``directory``."""
    if not os.path.isdir(directory):
        raise errors.MissingError(f"Image folder {directory!r} does not exist.")
    paths = sorted(
        os.path.join(root, f) for root, _, files in os.walk(directory) for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise errors.InputError(f"Image folder {directory!r} holds no {'/'.join(IMAGE_EXTENSIONS)} "
                                "files (searched recursively).")
    return paths


class BadImagesError(errors.TfAsganError, ValueError):
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
    suffix = "" if kind == "scan" else f".{kind}"
    return os.path.join(io.cache_root(), "folders", content_digest(paths) + suffix + ".json")


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
        io.atomic_write_json(path, value)
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
        raise errors.InputError(f"bad_images must be one of {list(BAD_IMAGES)}, "
                                f"got {bad_images!r}.")
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
