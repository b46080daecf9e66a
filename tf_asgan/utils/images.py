"""Images in the model's range: the [-1, 1] check, uint8 conversion, grids written as
PNG files, and the latent paths of interpolations (drawn by :mod:`tf_asgan.analysis.attacks`)."""

import os

import numpy as np
from PIL import Image

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
    """``[N, H, W, 3]`` images in ``[-1, 1]`` -> one uint8 ``[rows*H, columns*W, 3]`` grid."""
    images = to_uint8(images)
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
    """Writes ``images`` (``[N, H, W, 3]`` in ``[-1, 1]``) to ``path`` as a PNG grid."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with io.atomic_path(path, suffix=".png") as tmp:  # never a half-written PNG
        Image.fromarray(grid(images, columns)).save(tmp)
    return path


def interpolate_latents(z_start, z_end, steps, spherical=False):
    """``[P, D]`` pairs -> ``[P * steps, D]`` latents along each path, row by row.

    Linear interpolation by default (the paper's Fig. 9); ``spherical=True`` follows
    the great circle (keeps ``||z||`` typical for a Gaussian prior).
    """
    z_start, z_end = np.asarray(z_start, np.float64), np.asarray(z_end, np.float64)
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    a, b = z_start[:, None, :], z_end[:, None, :]
    if spherical:
        cos = np.sum(a * b, -1, keepdims=True) / (
            np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1, keepdims=True))
        omega = np.arccos(np.clip(cos, -1.0, 1.0))
        sin = np.maximum(np.sin(omega), 1e-8)
        path = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / sin
    else:
        path = (1 - t) * a + t * b
    return path.reshape(-1, z_start.shape[-1]).astype(np.float32)
