"""Images in the model's range: the [-1, 1] check, uint8 conversion, grids written as
PNG files, and the latent paths of interpolations (drawn by :mod:`tf_asgan.analysis.attacks`)."""

import os

import numpy as np
from PIL import Image

from tf_asgan import errors
from tf_asgan.utils import io

# How far outside [-1, 1] images may reach (rounding) before they are refused.
RANGE_SLACK = 1e-3


def in_model_range(low, high):
    """Whether images whose values span ``[low, high]`` are in the model range [-1, 1]."""
    return low >= -1.0 - RANGE_SLACK and high <= 1.0 + RANGE_SLACK


def to_uint8(images):
    """Images in ``[-1, 1]`` -> uint8 ``[0, 255]``."""
    return np.uint8(np.clip((np.asarray(images, np.float32) + 1.0) * 127.5 + 0.5, 0, 255))


def grid(images, columns=8, pad=2):
    """``[N, H, W, C]`` images in ``[-1, 1]`` -> one uint8 ``[rows*H, columns*W, C]`` grid
    (``C``: 1 for grey images, 3 for RGB; the padding is black).

    Raises:
      InputError: images that are not ``[N, H, W, C]`` with ``C`` 1 or 3.
    """
    images = to_uint8(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise errors.InputError(f"A grid takes images [N, H, W, C] with C = 1 (grey) or 3 (RGB); "
                                f"got shape {images.shape}.")
    n, h, w, c = images.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    out = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y:y + h, x:x + w] = img
    return out


def save_grid(images, path, columns=8):
    """Writes ``images`` (``[N, H, W, C]`` in ``[-1, 1]``) to ``path`` as a PNG grid: an
    8-bit grey PNG (mode "L") for one channel, RGB for three."""
    pixels = grid(images, columns)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with io.atomic_path(path, suffix=".png") as tmp:  # never a half-written PNG
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(tmp)
    return path


# Angles (radians) this close to 0 or pi take the lerp limit in spherical interpolation.
SLERP_DEGENERATE_ANGLE = 1e-7


def _angles(a, b):
    """Angles between the rows of ``a`` and ``b`` (``[..., D]`` -> ``[..., 1]``), accurate
    at every angle (``2 atan2(|a' - b'|, |a' + b'|)`` of the unit vectors; Kahan, "How
    futile are mindless assessments of roundoff in floating-point computation?", 2006,
    sec. 12); 0 where either row is zero."""
    na, nb = (np.linalg.norm(x, axis=-1, keepdims=True) for x in (a, b))
    ua, ub = a / np.where(na > 0, na, 1.0), b / np.where(nb > 0, nb, 1.0)
    return 2.0 * np.arctan2(np.linalg.norm(ua - ub, axis=-1, keepdims=True),
                            np.linalg.norm(ua + ub, axis=-1, keepdims=True))


def interpolate_latents(z_start, z_end, steps, spherical=False):
    """``[P, D]`` pairs -> ``[P * steps, D]`` float32 latents along each path, row by row.

    Linear interpolation by default (the paper's Fig. 9): ``(1 - t) a + t b`` for ``steps``
    values of ``t`` from 0 to 1. ``spherical=True`` follows the great circle (slerp,
    Shoemake 1985; White, "Sampling Generative Networks", 2016), which keeps ``||z||``
    typical for a Gaussian prior: ``(sin((1 - t) w) a + sin(t w) b) / sin w`` with ``w``
    the angle between ``a`` and ``b``. Where no great circle is defined, the path is the
    lerp (ours, documented): equal or parallel latents (``w`` = 0, the limit of slerp as
    ``w -> 0``: ``a`` at every step for ``a = b``), a zero latent, and antiparallel ones
    (``w = pi``: every great circle through ``a`` and ``-a`` is one, so none is picked;
    the lerp passes through the origin, as White's reference code does there); angles
    within :data:`SLERP_DEGENERATE_ANGLE` of 0 or pi count as these.

    Raises:
      InputError: for ``steps < 1`` or pairs of different shapes.
    """
    z_start, z_end = np.asarray(z_start, np.float64), np.asarray(z_end, np.float64)
    if z_start.shape != z_end.shape or z_start.ndim != 2:
        raise errors.InputError(f"Latent pairs must both be [P, D]; got {z_start.shape} and "
                                f"{z_end.shape}.")
    if int(steps) < 1:
        raise errors.InputError(f"An interpolation needs at least 1 step, got {steps}.")
    t = np.linspace(0.0, 1.0, int(steps))[None, :, None]
    a, b = z_start[:, None, :], z_end[:, None, :]
    path = (1 - t) * a + t * b
    if spherical:
        omega = _angles(a, b)
        curved = ((omega > SLERP_DEGENERATE_ANGLE) & (omega < np.pi - SLERP_DEGENERATE_ANGLE)
                  & (np.linalg.norm(a, axis=-1, keepdims=True) > 0)
                  & (np.linalg.norm(b, axis=-1, keepdims=True) > 0))
        sin = np.where(curved, np.sin(omega), 1.0)
        slerp = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / sin
        path = np.where(curved, slerp, path)
    return path.reshape(-1, z_start.shape[-1]).astype(np.float32)
