"""Latent paths of interpolations: slerp against hand values and its degenerate limits."""

import numpy as np
import pytest

from tf_asgan import errors
from tf_asgan.utils import images


def _lerp(a, b, steps):
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return np.concatenate([(1 - t) * x + t * y for x, y in zip(a, b)])


def _random_latents(rng):
    dim = int(rng.integers(1, 129))
    return rng.normal(size=(1, dim)) * rng.uniform(0.01, 100.0)


def test_slerp_of_equal_latents_is_the_latent_at_every_step():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = _random_latents(rng)
        path = images.interpolate_latents(a, a, 5, spherical=True)
        np.testing.assert_array_equal(path, np.repeat(a.astype(np.float32), 5, axis=0))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_slerp_of_parallel_and_antiparallel_latents_is_the_lerp(sign):
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = _random_latents(rng)
        b = sign * rng.uniform(0.1, 10.0) * a
        path = images.interpolate_latents(a, b, 7, spherical=True)
        np.testing.assert_allclose(path, _lerp(a, b, 7), rtol=1e-6,
                                   atol=1e-6 * np.abs(a).max())


def test_slerp_follows_the_great_circle():
    # Orthonormal a, b: z(t) = cos(t pi / 2) a + sin(t pi / 2) b.
    a, b = np.eye(3)[:1], np.eye(3)[1:2]
    t = np.linspace(0, 1, 5)
    expected = np.cos(t * np.pi / 2)[:, None] * a + np.sin(t * np.pi / 2)[:, None] * b
    path = images.interpolate_latents(a, b, 5, spherical=True)
    np.testing.assert_allclose(path, expected, atol=1e-7)
    # Random pairs of equal norm: the norm stays, the angle from a grows linearly.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 64)), rng.normal(size=(20, 64))
    b *= np.linalg.norm(a, axis=1, keepdims=True) / np.linalg.norm(b, axis=1, keepdims=True)
    path = images.interpolate_latents(a, b, 9, spherical=True).reshape(20, 9, 64)
    np.testing.assert_allclose(np.linalg.norm(path, axis=-1),
                               np.repeat(np.linalg.norm(a, axis=1)[:, None], 9, 1), rtol=1e-5)
    cos = np.einsum("pd,ptd->pt", a, path) / (np.linalg.norm(a, axis=1)[:, None]
                                               * np.linalg.norm(path, axis=-1))
    omega = np.arccos(np.sum(a * b, 1) / np.sum(a * a, 1))
    np.testing.assert_allclose(np.arccos(np.clip(cos, -1, 1)),
                               omega[:, None] * np.linspace(0, 1, 9), atol=2e-3)


def test_slerp_is_continuous_near_the_degenerate_angles():
    a = np.array([[1.0, 0.0]])
    for angle in (1e-5, np.pi - 1e-5):
        b = np.array([[np.cos(angle), np.sin(angle)]])
        t = np.linspace(0, 1, 5)[:, None]
        expected = np.cos(t * angle) * a + np.sin(t * angle) * np.array([[0.0, 1.0]])
        path = images.interpolate_latents(a, b, 5, spherical=True)
        np.testing.assert_allclose(path, expected, atol=1e-6)


def test_a_zero_latent_takes_the_lerp_and_bad_shapes_are_refused():
    a, b = np.zeros((1, 4)), np.ones((1, 4))
    np.testing.assert_allclose(images.interpolate_latents(a, b, 3, spherical=True),
                               _lerp(a, b, 3))
    with pytest.raises(errors.InputError, match="both be"):
        images.interpolate_latents(np.zeros((2, 4)), np.zeros((2, 5)), 3)
    with pytest.raises(errors.InputError, match="at least 1 step"):
        images.interpolate_latents(a, b, 0)
