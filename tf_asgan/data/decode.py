"""Decoding images: which decoder reads a folder's file, and the two decoders.

TensorFlow's decoder reads, in the input graph (fast, in parallel), only the formats it
reads right and safely: PNG (any bit depth and colour type; 16-bit as its high byte),
JPEG (any name: ``.jpg``, ``.jpeg``, ``.jfif``, ``.jpe``; with the accurate IDCT, see
:func:`decode_bytes`, which also decodes the TFDS datasets' stored images), GIF (the
first frame) and uncompressed 24- and 32-bit BMP. Every other file is decoded by Pillow
(the first frame, in the colours every viewer shows). Why (measured with TensorFlow
2.21):

- an animated WebP aborts the process inside ``tf.io.decode_image`` (SIGABRT, heap
  corruption; also when the file is named ``.png``, as TensorFlow picks its decoder by
  the content), so TensorFlow never decodes a WebP, animated or not;
- TensorFlow reads an 8-bit palette BMP's palette *indices* as grey levels and refuses
  1-bit BMPs; compressed (RLE, bit-field) and OS/2 BMPs are left to Pillow too.

The choice is made from the file's first bytes (as both libraries choose their
decoder), not from its name. Which decoder reads which format is ours.
"""

import os
import struct
import warnings

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

TF, PILLOW = "tf", "pillow"
# Changes when a file's pixels change (2: the accurate JPEG IDCT, Pillow for palette and
# 1-bit BMPs and WebP); part of a source's fingerprint, which keys cached statistics.
VERSION = 2
_HEADER_BYTES = 34  # a BMP's file header (14) and its info header up to the compression
_TF_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_BI_RGB = 0  # BMP compression: none
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def decoder_for(path):
    """:data:`TF` or :data:`PILLOW`: which decoder reads the file at ``path``, from its
    first bytes (a file that cannot be read goes to Pillow, which reports why)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
    except OSError:
        return PILLOW
    if head.startswith(_TF_MAGIC):
        return TF
    if head.startswith(b"BM") and len(head) == _HEADER_BYTES:
        header_size, = struct.unpack_from("<I", head, 14)
        bits, compression = struct.unpack_from("<HI", head, 28)
        if header_size >= 40 and bits in (24, 32) and compression == _BI_RGB:
            return TF
    return PILLOW


def pillow_pixels(path):
    """The first frame of the image at ``path`` as Pillow decodes it.

    Returns:
      uint8 ``[H, W, C]``, C = 1 (grey, 1-bit), 2 (grey + alpha), 3 (RGB; palette, CMYK
      and other colour modes converted by Pillow) or 4 (RGBA, palette with
      transparency). 16-bit grey keeps its high byte, as TensorFlow's PNG decoder does
      (Pillow's own conversion would clip it at 255).

    Raises:
      OSError, ValueError, PIL errors: a file Pillow cannot read (truncated, unknown).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. Pillow's palette-transparency notes
        with Image.open(path) as image:
            image.seek(0)
            image.load()
            if image.mode in _SIXTEEN_BIT:
                return (np.asarray(image, np.uint16) >> 8).astype(np.uint8)[..., None]
            if image.mode not in ("L", "LA", "RGB", "RGBA"):
                transparent = "transparency" in image.info or image.mode in ("PA", "RGBa")
                image = image.convert("L" if image.mode == "1" else
                                      "RGBA" if transparent else "RGB")
            pixels = np.asarray(image, np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def pillow_problem(path):
    """Why Pillow cannot decode the file at ``path`` in a few words, or ``None``."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        pixels = pillow_pixels(path)
    except UnidentifiedImageError:
        return "unknown image format (not PNG, JPEG, GIF, BMP or WebP)"
    except Image.DecompressionBombError as err:
        return str(err)[:160]
    except Exception as err:  # noqa: BLE001 - any failure of a decoder is a bad file
        return (f"{type(err).__name__}: " + (str(err).splitlines() or [""])[0])[:160]
    return None if min(pixels.shape) > 0 else "empty image"


def tf_decode(path):
    """TensorFlow's decode of the file at ``path`` (string tensor): uint8 ``[H, W, C]``
    (:func:`decode_bytes`)."""
    return decode_bytes(tf.io.read_file(path))


def decode_bytes(data):
    """An encoded PNG, JPEG, GIF or BMP (string tensor) -> uint8 ``[H, W, C]``.

    A JPEG is decoded with libjpeg's accurate integer IDCT (``INTEGER_ACCURATE``,
    libjpeg's own default, which Pillow and image viewers use): TensorFlow's default, the
    fast IDCT, is off by about one level on average and by up to 70 levels at quality 100
    (libjpeg's documentation warns that it is inaccurate above quality 97).
    """
    return tf.cond(tf.io.is_jpeg(data),
                   lambda: tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE"),
                   lambda: tf.io.decode_image(data, expand_animations=False))


def _pillow_decode(path):
    pixels = tf.numpy_function(lambda p: pillow_pixels(p.decode()), [path], tf.uint8,
                               stateful=False)
    pixels.set_shape([None, None, None])
    return pixels


def decode(path, use_pillow=None):
    """The pixels of the file at ``path`` (string tensor), uint8 ``[H, W, C]``, C in 1-4.

    ``use_pillow`` (bool tensor, or ``None`` for never) picks Pillow over TensorFlow's
    decoder (see :func:`decoder_for`); Pillow runs in the input pipeline through
    ``tf.numpy_function``.
    """
    if use_pillow is None:
        return tf_decode(path)
    return tf.cond(use_pillow, lambda: _pillow_decode(path), lambda: tf_decode(path))
