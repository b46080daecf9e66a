"""Image folders as training data: finding the files (symbolic links followed),
decoding each once to find the unreadable ones, EXIF orientation, and the folder's
fingerprint. Which decoder reads which file: :mod:`tf_asgan.data.decode`.

Scan and EXIF results are cached under ``$TF_ASGAN_CACHE/folders`` (see
:func:`tf_asgan.utils.io.cache_root`), keyed by :func:`content_digest` of the files.
"""

import concurrent.futures
import hashlib
import json
import logging
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_asgan import errors
from tf_asgan.data import decode
from tf_asgan.data.base import Source, to_model_range
from tf_asgan.utils import io

# The names of the formats the folder reads (:mod:`tf_asgan.data.decode`): PNG, JPEG,
# BMP, GIF (first frame), WebP (first frame).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".bmp", ".gif", ".webp")
BAD_IMAGES = ("skip", "fail")
SCAN_VERSION = 2  # 2: Pillow decodes what TensorFlow reads wrongly or unsafely
log = logging.getLogger(__name__)


def find_images(directory):
    """The image files (:data:`IMAGE_EXTENSIONS`, any case) below ``directory``.

    Symbolic links are followed, to files and to folders; each folder is read once
    (ours: a link to a folder already read, e.g. a cycle to a parent, is not read again).

    Returns:
      ``(paths, broken)``: the sorted paths of the files, and ``[(path, reason)]`` for
      the links among them whose target does not exist.

    Raises:
      MissingError: ``directory`` does not exist. InputError: it holds no image file.
    """
    if not os.path.isdir(directory):
        raise errors.MissingError(f"Image folder {directory!r} does not exist.")
    read, paths, broken = {}, [], []
    for root, dirs, files in os.walk(directory, followlinks=True, onerror=_unlistable):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in read:  # a cycle, or a second link to one folder
            log.info("Not reading %s again: it is the folder %s.", root, read[key])
            dirs[:] = []
            continue
        read[key] = root
        dirs.sort()  # a deterministic walk: the first name of a folder reached twice wins
        for name in files:
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(root, name)
            if os.path.exists(path):
                paths.append(path)
            else:  # a link whose target is missing (or a link cycle)
                broken.append((path, f"broken symbolic link to {_link_target(path)!r}"))
    if not paths and not broken:
        raise errors.InputError(f"Image folder {directory!r} holds no {'/'.join(IMAGE_EXTENSIONS)} "
                                "files (searched recursively).")
    return sorted(paths), sorted(broken)


def image_files(directory):
    """Sorted paths of the readable image files below ``directory`` (:func:`find_images`
    without the broken links)."""
    return find_images(directory)[0]


def _unlistable(err):
    log.warning("Cannot list the folder %s (%s); its images are left out.", err.filename,
                err.strerror or err)


def _link_target(path):
    try:
        return os.readlink(path)
    except OSError:
        return "?"


class BadImagesError(errors.TfAsganError, ValueError):
    """Image files of a folder cannot be decoded (with ``bad_images="fail"``)."""


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
    """``{"bad": [(path, reason)], "pillow": [paths Pillow decodes]}``: every file decoded
    once, by the decoder that will read it in training."""
    pillow = [p for p in paths if decode.decoder_for(p) == decode.PILLOW]
    by_pillow = set(pillow)
    by_tf = [p for p in paths if p not in by_pillow]
    bad = dict(_tf_problems(by_tf))
    if pillow:  # Pillow releases the GIL while it decodes
        with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            for path, problem in zip(pillow, pool.map(decode.pillow_problem, pillow)):
                if problem:
                    bad[path] = problem
    return {"bad": [(p, bad[p]) for p in paths if p in bad], "pillow": pillow}


def _tf_problems(paths):
    if not paths:
        return []
    index = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), paths))
    readable = index.map(lambda i, p: (i, tf.shape(decode.tf_decode(p))),
                         num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = {int(i) for i, shape in readable.as_numpy_iterator() if shape.min() > 0}
    bad = []
    for i, path in enumerate(paths):
        if i not in good:  # decoded again, alone, for the reason
            try:
                decode.tf_decode(path)
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

    Each file is decoded by the decoder that reads it in training
    (:mod:`tf_asgan.data.decode`): TensorFlow's in parallel through ``tf.data`` (about as
    costly as one epoch of reading), Pillow's in threads. The result is cached under
    ``$TF_ASGAN_CACHE/folders``, keyed by the files' paths, sizes and modification times,
    so a resumed run does not scan again.
    """
    return _scan_cached(paths, use_cache)["bad"]


def _scan_cached(paths, use_cache=True):
    cache = _folder_cache_path(paths, "scan") if use_cache else None
    if cache and os.path.exists(cache):
        try:
            with open(cache) as f:
                stored = json.load(f)
            if stored.get("version") == SCAN_VERSION and stored["files"] == len(paths):
                return {"bad": [tuple(item) for item in stored["bad"]],
                        "pillow": list(stored["pillow"])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("Ignoring the unreadable scan cache %s.", cache)
    result = _scan(paths)
    if cache:
        _write_json_quietly(cache, {"version": SCAN_VERSION, "files": len(paths), **result})
    return result


def folder_source(directory, resolution, bad_images="skip", scan=True):
    """Every PNG/JPEG/BMP/GIF/WebP below ``directory`` (symbolic links followed): any
    colour type (grey, grey + alpha, RGB, RGBA, palette, 1-bit, 16-bit), any size; an
    animated GIF or WebP gives its first frame. Images are ``[R, R, 3]`` float32 in
    ``[-1, 1]`` (:func:`~tf_asgan.data.base.to_model_range`), turned as their EXIF
    orientation says.

    Each file is decoded once first (:func:`scan_images`, cached), so that an unreadable
    or truncated file, or a link to nothing, is found before training, not hours into
    it: with ``bad_images="skip"`` such files are left out, counted and named in the log;
    with ``"fail"`` :class:`BadImagesError` lists them. ``scan=False`` skips the decoding
    check (a bad file then stops training when it is read).

    Raises:
      InputError: ``bad_images`` unknown, or no image file. MissingError: no folder.
      BadImagesError: bad files with ``"fail"``, or no readable file at all.
    """
    if bad_images not in BAD_IMAGES:
        raise errors.InputError(f"bad_images must be one of {list(BAD_IMAGES)}, "
                                f"got {bad_images!r}.")
    paths, broken = find_images(directory)
    total = len(paths) + len(broken)
    if scan:
        result = _scan_cached(paths)
    else:
        result = {"bad": [], "pillow": [p for p in paths
                                        if decode.decoder_for(p) == decode.PILLOW]}
    bad = sorted(broken + result["bad"])
    if bad:
        listed = "; ".join(f"{p} ({why})" for p, why in bad[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        if bad_images == "fail" or len(bad) == total:
            raise BadImagesError(
                f"{len(bad)} of the {total} image files in {directory!r} cannot be read: "
                f"{listed}{more}. Remove or repair them"
                + (", or pass --bad_images=skip to train without them." if len(bad) < total
                   else "."))
        log.warning("Skipping %d of the %d image files in %s that cannot be read: %s%s",
                    len(bad), total, directory, listed, more)
        unreadable = {p for p, _ in bad}
        paths = [p for p in paths if p not in unreadable]
    return _source(directory, paths, set(result["pillow"]), resolution, len(bad))


def _source(directory, paths, pillow, resolution, skipped):
    orientations = np.asarray(exif_orientations(paths), np.int32)
    rotated = int(np.sum(orientations != 1))
    if rotated:
        log.info("%d of the %d images in %s carry an EXIF orientation; they are turned as "
                 "a viewer shows them.", rotated, len(paths), directory)

    path_table, orientation_table = tf.constant(paths), tf.constant(orientations)
    # Only a folder with files for Pillow has Pillow in its input graph.
    pillow_table = tf.constant([p in pillow for p in paths]) if pillow else None

    def read_index(index):
        use_pillow = None if pillow_table is None else tf.gather(pillow_table, index)
        image = decode.decode(tf.gather(path_table, index), use_pillow)
        image = apply_orientation(image, tf.gather(orientation_table, index))
        return to_model_range(image, resolution)

    images = tf.data.Dataset.range(len(paths)).map(read_index,
                                                   num_parallel_calls=tf.data.AUTOTUNE)
    note = f", {skipped} unreadable skipped" if skipped else ""
    return Source(images, len(paths), f"folder:{directory} ({len(paths)} files{note})",
                  fingerprint=f"folder:{content_digest(paths)}:decode{decode.VERSION}",
                  read_index=read_index)
